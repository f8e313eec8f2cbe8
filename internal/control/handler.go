package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
)

// StatusError attaches an HTTP status and a hint to an error, and
// optionally a code and a detail value for the Error body.
type StatusError struct {
	Status int
	Err    error
	Hint   string
	Code   string
	Detail any
}

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

// Errorf returns a StatusError.
func Errorf(status int, hint, format string, args ...any) error {
	return &StatusError{Status: status, Err: fmt.Errorf(format, args...), Hint: hint}
}

// WithStatus wraps err with a status and hint.
func WithStatus(status int, hint string, err error) error {
	return &StatusError{Status: status, Err: err, Hint: hint}
}

// Handle adapts f to an http.Handler: f's result is written as JSON; its
// error as an Error body with the StatusError's status (500 otherwise).
func Handle(log *slog.Logger, f func(r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := f(r)
		if err != nil {
			status, body := http.StatusInternalServerError, Error{Message: err.Error()}
			var se *StatusError
			if errors.As(err, &se) {
				status, body.Hint, body.Code = se.Status, se.Hint, se.Code
				if se.Detail != nil {
					if b, jerr := json.Marshal(se.Detail); jerr == nil {
						body.Detail = b
					}
				}
			}
			if status >= 500 {
				log.Error("control request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			WriteJSON(w, status, body)
			return
		}
		WriteJSON(w, http.StatusOK, out)
	})
}

// WriteJSON writes v with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// DecodeBody decodes a JSON request body into v; an empty body leaves v as
// is. Unknown fields are an error, so a typo is not silently ignored.
func DecodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return Errorf(http.StatusBadRequest, "", "bad request body: %v", err)
	}
	return nil
}
