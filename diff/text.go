package diff

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/ckptdev/ckpt/internal/textsafe"
	"github.com/ckptdev/ckpt/internal/units"
)

// maxListed is how many tokens of each list WriteText prints.
const maxListed = 20

// WriteText writes the report for people: what differs (identical files
// and tensors are only counted), then the notes and the summary line.
// Names that come from the checkpoints (paths, JSON keys, tensor names,
// dtypes) are printed escaped (textsafe.Name), notes on one line each.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("A: %s\nB: %s\n", textsafe.Name(r.A), textsafe.Name(r.B))

	var differ []FileChange
	for _, fc := range r.Files {
		if fc.Kind != Same {
			differ = append(differ, fc)
		}
	}
	p("\nfiles: %d of %d differ\n", len(differ), len(r.Files))
	for _, fc := range differ {
		p("  %s\t%s\t%s\t-> %s\n", fc.Kind, textsafe.Name(fc.Path), fileSize(fc.SizeA, fc.Kind != Added, fc.FromA), fileSize(fc.SizeB, fc.Kind != Removed, fc.FromB))
	}

	if len(r.JSON) > 0 {
		p("\njson keys:\n")
		for _, c := range r.JSON {
			p("  %s\t%s\t%s\t%s\n", textsafe.Name(c.File), c.Kind, textsafe.Name(c.Key), textsafe.Line(jsonValues(c)))
		}
	}

	if d := r.Adapter; d != nil {
		p("\nadapter: %s -> %s\n", textsafe.Line(orDash(d.A)), textsafe.Line(orDash(d.B)))
		for _, c := range d.Changes {
			p("  %s\t%s\t-> %s\n", c.Setting, textsafe.Line(orDash(c.A)), textsafe.Line(orDash(c.B)))
		}
	}

	if t := r.Tokenizer; t != nil && !t.Same && t.InA && t.InB {
		p("\ntokenizer: vocabulary %d -> %d\n", t.VocabA, t.VocabB)
		listTokens(tw, "+ token", t.Added)
		listTokens(tw, "- token", t.Removed)
		for i, m := range t.Renumbered {
			if i == maxListed {
				p("  ... and %d more renumbered\n", len(t.Renumbered)-i)
				break
			}
			p("  ~ token\t%s\t%d -> %d\n", strconv.Quote(m.Content), m.OldID, m.NewID)
		}
		listTokens(tw, "+ special", t.SpecialAdded)
		listTokens(tw, "- special", t.SpecialRemoved)
		for _, c := range t.SpecialRoles {
			p("  ~ special\t%s\t%s -> %s\n", textsafe.Name(c.Role), quoteOr(c.Old, c.Kind != Added), quoteOr(c.New, c.Kind != Removed))
		}
		if m := t.Merges; m != nil && (m.Added > 0 || m.Removed > 0 || m.Reordered) {
			p("  merges\t%d -> %d\t+%d -%d", m.CountA, m.CountB, m.Added, m.Removed)
			if m.Reordered {
				p(", shared merges reordered")
			}
			p("\n")
			for _, s := range m.FirstAdded {
				p("  + merge\t%s\n", strconv.Quote(s))
			}
			for _, s := range m.FirstRemoved {
				p("  - merge\t%s\n", strconv.Quote(s))
			}
		}
	}

	var tensorsDiffer []TensorChange
	for _, t := range r.Tensors {
		if t.Kind != Same {
			tensorsDiffer = append(tensorsDiffer, t)
		}
	}
	if len(tensorsDiffer) > 0 {
		p("\ntensors: %d of %d differ\n", len(tensorsDiffer), len(r.Tensors))
		for _, t := range tensorsDiffer {
			p("  %s\t%s\t%s\t%s\n", t.Kind, textsafe.Name(t.Name), textsafe.Line(tensorShapes(t)), textsafe.Line(statsText(t.Stats)))
		}
	}
	if len(r.Notes) > 0 || r.Tokenizer != nil && len(r.Tokenizer.Notes) > 0 {
		p("\nnotes:\n")
		for _, n := range r.Notes {
			p("  %s\n", textsafe.Line(n))
		}
		if r.Tokenizer != nil {
			for _, n := range r.Tokenizer.Notes {
				p("  %s\n", textsafe.Line(n))
			}
		}
	}
	p("\n%s\n", textsafe.Line(r.Summary()))
	return tw.Flush()
}

func fileSize(n int64, present bool, from string) string {
	if !present {
		return "-"
	}
	s := units.Bytes(n)
	if from != "" {
		s += " (from " + from + ")"
	}
	return s
}

func jsonValues(c JSONChange) string {
	switch c.Kind {
	case Added:
		return "+ " + shorten(string(c.New))
	case Removed:
		return "- " + shorten(string(c.Old))
	}
	return shorten(string(c.Old)) + " -> " + shorten(string(c.New))
}

func listTokens(w io.Writer, label string, ts []Token) {
	for i, t := range ts {
		if i == maxListed {
			fmt.Fprintf(w, "  ... and %d more\n", len(ts)-i)
			return
		}
		id := strconv.Itoa(t.ID)
		if t.ID < 0 {
			id = "?"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", label, strconv.Quote(t.Content), id)
	}
}

func quoteOr(s string, present bool) string {
	if !present {
		return "(none)"
	}
	return strconv.Quote(s)
}

func tensorShapes(t TensorChange) string {
	a := t.DtypeA + " " + shapeText(t.ShapeA)
	b := t.DtypeB + " " + shapeText(t.ShapeB)
	switch t.Kind {
	case Added:
		return b
	case Removed, Changed:
		return a
	}
	return a + " -> " + b
}

func shapeText(shape []int64) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = strconv.FormatInt(d, 10)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func statsText(st *TensorStats) string {
	switch {
	case st == nil:
		return ""
	case st.Skipped != "":
		return "stats skipped: " + st.Skipped
	}
	rel := "n/a"
	if st.RelL2 != nil {
		rel = strconv.FormatFloat(*st.RelL2, 'g', 4, 64)
	}
	s := fmt.Sprintf("max|d| %s  rel L2 %s  %d of %d elements differ", strconv.FormatFloat(st.MaxAbsDelta, 'g', 4, 64), rel, st.Differing, st.Elements)
	if st.NonFinite > 0 {
		s += fmt.Sprintf(", %d NaN/Inf", st.NonFinite)
	}
	if st.Note != "" {
		s += " (" + st.Note + ")"
	}
	return s
}

// shorten cuts a long value for one line of text.
func shorten(s string) string {
	const limit = 80
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "..."
}
