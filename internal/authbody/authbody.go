// Package authbody decodes and checks the JSON bodies of the sign-in,
// refresh and logout endpoints. It sits apart from the soul_auth handler so
// that its fuzz targets instrument these few lines rather than all of Caddy.
package authbody

import (
	"fmt"
	"net/http"

	"github.com/soulapp/soul/internal/jsonbody"
	"github.com/soulapp/soul/internal/otp"
	"github.com/soulapp/soul/internal/problem"
)

// OTPRequest is the body of POST /api/auth/otp/request.
type OTPRequest struct {
	Phone string `json:"phone"`
}

// VerifyOTPRequest is the body of POST /api/auth/verify-otp.
type VerifyOTPRequest struct {
	Phone string `json:"phone"`
	Code  string `json:"code"`
}

// RefreshRequest is the body of POST /api/auth/refresh and /logout.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// DecodeOTPRequest reads and checks an OTP request body.
func DecodeOTPRequest(r *http.Request) (OTPRequest, error) {
	var req OTPRequest
	if err := jsonbody.Decode(r, &req); err != nil {
		return req, err
	}
	if req.Phone == "" {
		return req, problem.Validation(problem.FieldError{Field: "phone", Message: "is required"})
	}
	return req, nil
}

// DecodeVerifyOTPRequest reads and checks a verify-otp body.
func DecodeVerifyOTPRequest(r *http.Request) (VerifyOTPRequest, error) {
	var req VerifyOTPRequest
	if err := jsonbody.Decode(r, &req); err != nil {
		return req, err
	}
	var fields []problem.FieldError
	if req.Phone == "" {
		fields = append(fields, problem.FieldError{Field: "phone", Message: "is required"})
	}
	switch {
	case req.Code == "":
		fields = append(fields, problem.FieldError{Field: "code", Message: "is required"})
	case !otp.WellFormedCode(req.Code):
		fields = append(fields, problem.FieldError{Field: "code", Message: fmt.Sprintf("must be %d digits", otp.CodeLength)})
	}
	if len(fields) > 0 {
		return req, problem.Validation(fields...)
	}
	return req, nil
}

// DecodeRefreshRequest reads and checks a refresh or logout body.
func DecodeRefreshRequest(r *http.Request) (RefreshRequest, error) {
	var req RefreshRequest
	if err := jsonbody.Decode(r, &req); err != nil {
		return req, err
	}
	if req.RefreshToken == "" {
		return req, problem.Validation(problem.FieldError{Field: "refresh_token", Message: "is required"})
	}
	return req, nil
}
