package workflows

import "github.com/linsync/linsync/activities"

// The events workflows' inputs, as the API sees them when it judges a dead letter's replay. They are defined with
// the activities that start the aggregators; these names let the api package read them without importing
// activities.
type (
	// FiledEntry is one entry (a broken link, a digest line) filed into an issue.
	FiledEntry = activities.FiledEntry
	// AggregatorInput is the input of a per-host or per-digest aggregator workflow.
	AggregatorInput = activities.AggregatorInput
)

// AggregatorWorkflowName is the registered name of the aggregator workflow.
const AggregatorWorkflowName = activities.AggregatorWorkflowName
