package worker

import (
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
)

// EncryptPayloads makes the Temporal client that opts describes seal every payload it writes with codec (usually
// an envelope.Codec) and open what it reads: workflow inputs and results, activity arguments and results, signals,
// queries, memos and schedule actions, and the messages and stack traces of failures, which may quote user data.
// Set it on the one client the API and the worker share, so both see the same plaintext and Temporal sees none.
func EncryptPayloads(opts *client.Options, codec converter.PayloadCodec) {
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), codec)
	opts.DataConverter = dc
	opts.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter: dc, EncodeCommonAttributes: true})
}
