package linear

// DecodeWebhookStd is DecodeWebhook with encoding/json alone, for the tests that hold the fast decoder to it.
var DecodeWebhookStd = decodeWebhookStd
