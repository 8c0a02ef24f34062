package cli

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/hpcvm/hpcvm/internal/trace"
	"github.com/spf13/cobra"
)

// RunReport is what start, stop and destroy print with -o json: one JSON
// document when the run ends, for scripts, instead of progress and text.
type RunReport struct {
	Operation  string `json:"operation"` // start, stop, destroy
	Cluster    string `json:"cluster"`
	Host       string `json:"host"`
	WorkflowID string `json:"workflow_id,omitempty"`
	RunID      string `json:"run_id,omitempty"`
	// ExitCode is the command's exit code (see hpcvm --help); Error its
	// message when not 0.
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
	// Result is the run's own result: what it created, started, stopped or
	// deleted (the workflow's StartResult, StopResult or DestroyResult).
	Result    any          `json:"result,omitempty"`
	Trace     *TraceReport `json:"trace,omitempty"`
	Inventory string       `json:"inventory,omitempty"` // the Ansible inventory start wrote

	out io.Writer // where the report goes, while the text goes nowhere
}

// TraceReport is where the run's XML trace went.
type TraceReport struct {
	Folder        string `json:"folder"`
	XMLOperations int    `json:"xml_operations"`
	Successful    int    `json:"successful"`
	Failed        int    `json:"failed"`
	// NotApplied of the successful ones found their object as planned and
	// kept it: libvirt was not given the document.
	NotApplied int `json:"not_applied"`
	OtherCalls int `json:"other_libvirt_calls"`
}

func traceReport(s trace.Summary) *TraceReport {
	return &TraceReport{Folder: s.Folder, XMLOperations: s.XML, Successful: s.Succeeded, Failed: s.Failed, NotApplied: s.NotApplied, OtherCalls: s.OtherCalls}
}

// addOutputFlag gives an operation its -o text|json.
func addOutputFlag(cmd *cobra.Command) {
	cmd.Flags().StringP("output", "o", "text", "text, or json: no progress, one JSON document when the run ends (for scripts)")
}

// beginReport starts -o json: the text output goes nowhere until the
// report is printed by endReport. With -o text it returns nil.
func (a *app) beginReport(cmd *cobra.Command, op string) (*RunReport, error) {
	format, _ := cmd.Flags().GetString("output")
	switch format {
	case "text":
		return nil, nil
	case "json":
	default:
		return nil, fail(ExitBadInput, "--output must be text or json, not %q", format)
	}
	r := &RunReport{Operation: op, out: a.out}
	a.report, a.out = r, io.Discard
	return r, nil
}

// withReport gives an operation's command -o text|json: with json, its
// RunE runs with the text output discarded, then the report is printed.
func (a *app) withReport(op string, cmd *cobra.Command) *cobra.Command {
	addOutputFlag(cmd)
	inner := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		r, err := a.beginReport(cmd, op)
		if err != nil {
			return err
		}
		err = inner(cmd, args)
		if r == nil {
			return err
		}
		return a.endReport(r, r.Result, err)
	}
	return cmd
}

// reportResult records the run's result for -o json.
func (a *app) reportResult(result any) {
	if a.report != nil {
		a.report.Result = result
	}
}

// endReport prints the report with the run's result and err's exit code,
// and returns err for the exit code.
func (a *app) endReport(r *RunReport, result any, err error) error {
	if r == nil {
		return err
	}
	a.out, a.report = r.out, nil
	r.Result = result
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.ExitCode, r.Error = ee.code, ee.msg
	default:
		r.ExitCode, r.Error = ExitBadInput, err.Error()
	}
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	if encErr := enc.Encode(r); encErr != nil && err == nil {
		return fail(ExitFailed, "printing the report: %v", encErr)
	}
	return err
}
