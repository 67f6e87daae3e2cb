package main

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGCPercentDefault: the collector's target is 25 % unless GOGC is set, in which case Go's own
// reading of it stands. Not parallel: it sets the process's collector.
func TestGCPercentDefault(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	setGCPercent(func(string) (string, bool) { return "", false })
	require.Equal(t, gcPercent, debug.SetGCPercent(100))

	setGCPercent(func(name string) (string, bool) { return "80", name == "GOGC" })
	require.Equal(t, 100, debug.SetGCPercent(100), "GOGC set: left alone")
}
