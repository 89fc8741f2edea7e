package linear

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

type operationKey struct{}

// tracedHTTPClient returns a copy of hc whose requests are client spans of tp, named after the GraphQL operation
// ("linear IssueCreate"), so a trace shows which call to Linear a workflow made. No trace context is sent to Linear.
func tracedHTTPClient(hc *http.Client, tp trace.TracerProvider) *http.Client {
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	traced := *hc
	traced.Transport = otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if op, ok := r.Context().Value(operationKey{}).(string); ok && op != "" {
				return "linear " + op
			}
			return "linear graphql"
		}))
	return &traced
}

func withOperation(ctx context.Context, op string) context.Context {
	return context.WithValue(ctx, operationKey{}, op)
}
