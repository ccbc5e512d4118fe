{
  components: {
    securitySchemes: .components.securitySchemes,
    schemas: (.components.schemas | with_entries(select(.key | IN(
      "verify.v2.service.verification", "verification_enum_channel", "verification_enum_risk_check",
      "verify.v2.service.verification_check", "verification_check_enum_channel"))))
  },
  info: .info,
  openapi: .openapi,
  paths: (.paths | with_entries(select(.key | IN(
    "/v2/Services/{ServiceSid}/Verifications", "/v2/Services/{ServiceSid}/VerificationCheck")))),
  servers: .servers,
  tags: [.tags[] | select(.name | IN("VerifyV2Verification", "VerifyV2VerificationCheck"))],
  security: .security
}
