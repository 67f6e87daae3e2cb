package refresh

import "log/slog"

// LoggerOrDiscard returns l, or a logger that discards everything when l is nil: the default of
// the Logger option of the loop and of every source, sink and job it runs.
func LoggerOrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
