// Package jsonbody decodes API request bodies: JSON only, one object, no
// unknown fields, answered as the API's problems when it is not that.
package jsonbody

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/soulapp/soul/internal/problem"
)

// Decode reads r's body into v. Its errors are *problem.Error: 415 for a
// body that is not declared as JSON, 413 over the request_body limit, 400
// invalid_json for anything unparseable, of the wrong type, with unknown
// fields or with data after the value.
func Decode(r *http.Request, v any) error {
	body, err := Read(r)
	if err != nil {
		return err
	}
	return DecodeBytes(body, v)
}

// Read is Decode's reading step, for a caller that parses the body itself
// (with DecodeBytes and rules of its own): it checks that the body is
// declared as JSON and reads it within the request_body limit. Its errors
// are Decode's 415, 413 and 400 invalid_json for a body that could not be
// read.
func Read(r *http.Request) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, problem.New(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"The request body must be JSON (Content-Type: application/json).")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, problem.New(http.StatusRequestEntityTooLarge, "payload_too_large",
				"The request body is larger than 64 KiB.")
		}
		return nil, problem.New(http.StatusBadRequest, "invalid_json", "The request body could not be read.")
	}
	return body, nil
}

// DecodeBytes is Decode's parsing step, on a body already read.
func DecodeBytes(body []byte, v any) error {
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD; refusing
	// it keeps what the client sent and what is stored the same (RFC 8259
	// requires UTF-8).
	if !utf8.Valid(body) {
		return problem.New(http.StatusBadRequest, "invalid_json", "The request body is not valid UTF-8.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return problem.New(http.StatusBadRequest, "invalid_json", "The request body has data after the JSON value.")
	}
	return nil
}

// invalid explains a decoding error without quoting the body, which may
// hold a phone number, code or token.
func invalid(err error) *problem.Error {
	detail := "The request body is not valid JSON."
	var (
		typeErr *json.UnmarshalTypeError
		synErr  *json.SyntaxError
	)
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field != "" {
			detail = "Field " + quote(typeErr.Field) + " has the wrong type."
		} else {
			detail = "The request body must be a JSON object."
		}
	case errors.As(err, &synErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
	default:
		// encoding/json reports unknown fields only by this message; the
		// name is the client's and is not repeated.
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			detail = "The request body has an unknown field."
		}
	}
	return problem.New(http.StatusBadRequest, "invalid_json", detail)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
