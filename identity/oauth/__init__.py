"""The OAuth 2 / OpenID Connect provider for mini-apps (RFC 6749, RFC 7636,
RFC 7009, OpenID Connect Core): authorisation codes, token grants, ID tokens,
userinfo claims, browser login sessions and the in-app quick login."""
