package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/fengda-ai/fengda/nlpclient/faq"
	"github.com/fengda-ai/fengda/tenant"
)

// runEval measures a tenant's FAQ engine on a file of labelled queries:
// fengda eval -tenant ID -queries FILE [-followups FILE] [-json].
func runEval(args []string, getenv func(string) string, stdout io.Writer) error {
	fl := flag.NewFlagSet("eval", flag.ContinueOnError)
	fl.SetOutput(stdout)
	configPath := fl.String("config", "", "config file")
	tid := fl.String("tenant", "", "tenant id (required)")
	queries := fl.String("queries", "", `labelled queries: {"queries":[{"query","gold","kind"}]} and/or {"followups":[…]} (required)`)
	followups := fl.String("followups", "", "a second file of follow-up pairs")
	asJSON := fl.Bool("json", false, "print the report as JSON")
	misses := fl.Bool("misses", false, "list the queries the engine got wrong")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *tid == "" || *queries == "" {
		return errors.New("eval: -tenant and -queries are required")
	}
	tenants, id, err := registryFor(*configPath, *tid, getenv)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	t, err := tenants.Get(id)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	f, err := loadFAQ(t)
	if err != nil {
		return err
	}
	set, err := faq.LoadEvalSet(*queries)
	if err != nil {
		return fmt.Errorf("eval: -queries: %w", err)
	}
	if *followups != "" {
		more, err := faq.LoadEvalSet(*followups)
		if err != nil {
			return fmt.Errorf("eval: -followups: %w", err)
		}
		set.Queries = append(set.Queries, more.Queries...)
		set.Followups = append(set.Followups, more.Followups...)
	}
	rep := faq.Evaluate(f, set.Queries, set.Followups)
	if !*misses {
		rep.Misses = nil
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return printEval(stdout, id, rep)
}

func printEval(w io.Writer, id tenant.ID, r faq.EvalReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	pct := func(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }
	fmt.Fprintf(tw, "tenant\t%s\n", id)
	fmt.Fprintf(tw, "in-scope queries\t%d\n", r.InScope)
	fmt.Fprintf(tw, "top-1 accuracy (in scope)\t%s\n", pct(r.Top1))
	fmt.Fprintf(tw, "top-3 recall (in scope)\t%s\n", pct(r.Top3))
	fmt.Fprintf(tw, "answered from the right entry\t%s\n", pct(r.Answered))
	fmt.Fprintf(tw, "answered from a wrong entry\t%s\n", pct(r.WrongAnswers))
	fmt.Fprintf(tw, "out-of-scope queries\t%d\n", r.OutOfScope)
	fmt.Fprintf(tw, "out-of-scope rejection\t%s\n", pct(r.Rejection))
	fmt.Fprintf(tw, "follow-ups\t%d\n", r.FollowUps)
	fmt.Fprintf(tw, "follow-up accuracy\t%s\n", pct(r.FollowUpTop1))
	fmt.Fprintf(tw, "time per query p50 / p99\t%s / %s\n", r.P50, r.P99)
	fmt.Fprintf(tw, "\nkind\tn\ttop-1\tanswered\n")
	for _, k := range r.Kinds() {
		kr := r.ByKind[k]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", k, kr.N, pct(kr.Top1), pct(kr.Answered))
	}
	for _, m := range r.Misses {
		fmt.Fprintf(tw, "miss\t%s\t%q gold %s got %s (%s %.2f)\n", m.Kind, m.Query, m.Gold, m.Got, m.Source, m.Confidence)
	}
	return tw.Flush()
}
