package targets

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Labels of a target's own scrape interval and timeout, which Prometheus honours per target over
// its job's scrape_interval and scrape_timeout.
const (
	LabelScrapeInterval = model.ScrapeIntervalLabel
	LabelScrapeTimeout  = model.ScrapeTimeoutLabel
)

// Skip reasons of a target whose scrape settings are unusable, the same for every source.
const (
	ReasonBadScheme         = "bad_scheme"          // neither http nor https
	ReasonBadScrapeInterval = "bad_scrape_interval" // not a duration, or 0
	ReasonBadScrapeTimeout  = "bad_scrape_timeout"  // not a duration, 0, or longer than the interval
)

// Setting is one scrape setting as a tag or docker label gives it: Name says where it comes from
// in an error ("service tag METRICS_SCHEME"); Set is false when the tag or label is absent.
type Setting struct {
	Name, Value string
	Set         bool
}

// ScrapeSettings are a target's own scheme, scrape interval and scrape timeout, checked and in
// canonical form; each is "" when not set, and the job's setting applies.
type ScrapeSettings struct {
	Scheme, Interval, Timeout string
}

// ScrapeError is an unusable scrape setting: Reason is the skip reason, and the message names the
// tag or label and its value.
type ScrapeError struct {
	Reason string
	msg    string
}

func (e *ScrapeError) Error() string { return e.msg }

// ParseScrapeSettings checks a target's scheme, scrape interval and scrape timeout (a blank value
// counts as unset, spaces around a value are ignored): the scheme is http or https, in any case; the interval and timeout are Prometheus
// durations (such as 15s or 1m30s) above 0, and the timeout is no longer than the interval when
// both are set. That is what Prometheus requires of the labels; a timeout set alone can still be
// longer than the job's interval (and an interval set alone shorter than the job's timeout),
// which only Prometheus can see: it drops such a target with an error.
func ParseScrapeSettings(scheme, interval, timeout Setting) (ScrapeSettings, *ScrapeError) {
	var s ScrapeSettings
	if scheme.given() {
		s.Scheme = strings.ToLower(strings.TrimSpace(scheme.Value))
		if s.Scheme != "http" && s.Scheme != "https" {
			return ScrapeSettings{}, &ScrapeError{ReasonBadScheme, fmt.Sprintf("%s=%q is neither http nor https", scheme.Name, scheme.Value)}
		}
	}
	var iv, to time.Duration
	var err *ScrapeError
	if interval.given() {
		if iv, err = parseScrapeDuration(interval, ReasonBadScrapeInterval); err != nil {
			return ScrapeSettings{}, err
		}
		s.Interval = model.Duration(iv).String()
	}
	if timeout.given() {
		if to, err = parseScrapeDuration(timeout, ReasonBadScrapeTimeout); err != nil {
			return ScrapeSettings{}, err
		}
		s.Timeout = model.Duration(to).String()
	}
	if iv != 0 && to > iv {
		return ScrapeSettings{}, &ScrapeError{ReasonBadScrapeTimeout, fmt.Sprintf("%s=%q is longer than %s=%q", timeout.Name, timeout.Value, interval.Name, interval.Value)}
	}
	return s, nil
}

// given reports whether the setting has a value: a blank one counts as unset.
func (st Setting) given() bool { return st.Set && strings.TrimSpace(st.Value) != "" }

// parseScrapeDuration parses a scrape interval or timeout, which must be above 0.
func parseScrapeDuration(st Setting, reason string) (time.Duration, *ScrapeError) {
	d, err := model.ParseDuration(strings.TrimSpace(st.Value))
	switch {
	case err != nil:
		return 0, &ScrapeError{reason, fmt.Sprintf("%s=%q is not a duration (such as 15s or 1m30s)", st.Name, st.Value)}
	case d == 0:
		return 0, &ScrapeError{reason, fmt.Sprintf("%s=%q is not above 0", st.Name, st.Value)}
	}
	return time.Duration(d), nil
}

// SetScrape sets the scheme, scrape interval and scrape timeout labels of s that are set, and
// removes the others (labels may be a copy of another target's).
func (b *LabelBuilder) SetScrape(labels model.LabelSet, s ScrapeSettings) {
	for _, l := range [...]struct {
		name  model.LabelName
		value string
	}{{LabelScheme, s.Scheme}, {LabelScrapeInterval, s.Interval}, {LabelScrapeTimeout, s.Timeout}} {
		if l.value == "" {
			delete(labels, l.name)
		} else {
			labels[l.name] = b.Value(l.value)
		}
	}
}

// checkScrapeLabels checks the scrape labels of a target group as Prometheus would.
func checkScrapeLabels(labels model.LabelSet) error {
	if s, ok := labels[LabelScheme]; ok && s != "http" && s != "https" {
		return fmt.Errorf("scheme %q is neither http nor https", s)
	}
	var ds [2]model.Duration
	for i, name := range []model.LabelName{LabelScrapeInterval, LabelScrapeTimeout} {
		v, ok := labels[name]
		if !ok {
			continue
		}
		d, err := model.ParseDuration(string(v))
		if err != nil || d == 0 {
			return fmt.Errorf("label %s=%q is not a duration above 0", name, v)
		}
		ds[i] = d
	}
	if ds[0] != 0 && ds[1] > ds[0] {
		return fmt.Errorf("scrape timeout %s is longer than the scrape interval %s", ds[1], ds[0])
	}
	return nil
}
