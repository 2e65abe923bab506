//! How requests authenticate: basic auth (Airflow 2), a static bearer token, or a JWT from
//! Airflow 3's `POST /auth/token`, cached and refreshed before it expires.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::Value;
use tokio::sync::Mutex;

/// A cached token is refreshed when it has less than this left (seconds).
const REFRESH_MARGIN_SECONDS: i64 = 30;

/// The `Authorization` header of one request. Its Debug never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// A static bearer token: never refreshed.
    Static(String),
    /// A JWT from `/auth/token`: refreshed once when Airflow rejects it.
    Jwt(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::Static(_) => f.write_str("Static(***)"),
            Credential::Jwt(_) => f.write_str("Jwt(***)"),
        }
    }
}

impl Credential {
    pub(crate) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credential::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
            Credential::Static(token) | Credential::Jwt(token) => request.bearer_auth(token),
        }
    }
}

/// The JWT cache. The mutex is held while a token is fetched, so concurrent callers wait for
/// that one fetch instead of each asking `/auth/token`.
pub(crate) struct TokenCache {
    slot: Mutex<Option<CachedToken>>,
}

#[derive(Clone)]
pub(crate) struct CachedToken {
    pub(crate) value: String,
    /// The JWT's `exp` (Unix seconds), when it can be read.
    expires_at: Option<i64>,
}

impl CachedToken {
    pub(crate) fn new(value: String) -> Self {
        let expires_at = jwt_expiry(&value);
        Self { value, expires_at }
    }

    fn is_fresh(&self) -> bool {
        match self.expires_at {
            Some(exp) => exp - Utc::now().timestamp() > REFRESH_MARGIN_SECONDS,
            None => true,
        }
    }
}

impl TokenCache {
    pub(crate) fn new() -> Self {
        Self {
            slot: Mutex::new(None),
        }
    }

    /// The cached token if it is not about to expire, else one from `fetch` (used even if it
    /// is short-lived itself).
    pub(crate) async fn current<F, Fut, E>(&self, fetch: F) -> Result<String, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedToken, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(token) = slot.as_ref().filter(|token| token.is_fresh()) {
            return Ok(token.value.clone());
        }
        let token = fetch().await?;
        let value = token.value.clone();
        *slot = Some(token);
        Ok(value)
    }

    /// A new token after Airflow rejected `rejected`, unless another caller already replaced
    /// it, in which case that newer token is returned.
    pub(crate) async fn replace<F, Fut, E>(&self, rejected: &str, fetch: F) -> Result<String, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<CachedToken, E>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(token) = slot.as_ref().filter(|token| token.value != rejected) {
            return Ok(token.value.clone());
        }
        *slot = None;
        let token = fetch().await?;
        let value = token.value.clone();
        *slot = Some(token);
        Ok(value)
    }
}

/// The `exp` claim of a JWT, read without verifying the signature (the client only needs to
/// know when to refresh; Airflow verifies).
pub(crate) fn jwt_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    exp.as_i64().or_else(|| exp.as_f64().map(|exp| exp as i64))
}

/// Whether Airflow's answer means "this JWT is missing, expired or invalid": any 401, or a
/// 403 whose detail names the JWT (`Invalid JWT token`), not a missing permission.
pub(crate) fn rejects_token(status: u16, detail: &str) -> bool {
    status == 401 || (status == 403 && detail.to_ascii_lowercase().contains("jwt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        format!(
            "eyJhbGciOiJIUzUxMiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(claims)
        )
    }

    #[test]
    fn reads_exp_without_verifying() {
        assert_eq!(
            jwt_expiry(&jwt(r#"{"sub":"admin","exp":1800000000}"#)),
            Some(1_800_000_000)
        );
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"admin"}"#)), None);
        assert_eq!(jwt_expiry("opaque-token"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
    }

    #[test]
    fn freshness_keeps_a_margin() {
        let now = Utc::now().timestamp();
        let token = |exp: i64| CachedToken::new(jwt(&format!(r#"{{"exp":{exp}}}"#)));
        assert!(token(now + 3600).is_fresh());
        assert!(!token(now + 10).is_fresh());
        assert!(!token(now - 10).is_fresh());
        assert!(CachedToken::new("opaque".into()).is_fresh());
    }

    #[test]
    fn token_rejections() {
        assert!(rejects_token(401, "Token Expired"));
        assert!(rejects_token(401, "Not authenticated"));
        assert!(rejects_token(403, "Invalid JWT token"));
        assert!(!rejects_token(403, "Forbidden"));
        assert!(!rejects_token(404, "Invalid JWT token"));
    }

    #[test]
    fn debug_hides_secrets() {
        let basic = Credential::Basic {
            username: "admin".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{basic:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credential::Jwt("secret.jwt.value".into())).contains("secret"));
    }
}
