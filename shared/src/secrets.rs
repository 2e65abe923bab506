//! Connector secrets, resolved only when a sync or trigger needs them and never logged or
//! returned: an AWS Secrets Manager secret in production; an environment variable of this
//! process, or the value kept in the embedded store, for local use.

use tokio::sync::OnceCell;

use crate::domain::model::SecretRef;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("secret {arn} could not be read: {reason}")]
    SecretsManager { arn: String, reason: String },
}

/// Reads secrets; holds one Secrets Manager client, created on first use.
#[derive(Default)]
pub struct SecretResolver {
    client: OnceCell<aws_sdk_secretsmanager::Client>,
}

impl SecretResolver {
    pub fn new() -> Self {
        Self::default()
    }

    pub async fn resolve(&self, reference: &SecretRef) -> Result<String, SecretError> {
        match reference {
            SecretRef::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingEnv(name.clone()))
            }
            SecretRef::Stored(value) => Ok(value.clone()),
            SecretRef::SecretsManager(arn) => {
                let client = self
                    .client
                    .get_or_try_init(|| async {
                        let config = crate::aws::sdk_config().await.map_err(|reason| {
                            SecretError::SecretsManager {
                                arn: arn.clone(),
                                reason,
                            }
                        })?;
                        Ok::<_, SecretError>(crate::aws::secrets_manager_client(&config))
                    })
                    .await?;
                let output = client
                    .get_secret_value()
                    .secret_id(arn)
                    .send()
                    .await
                    .map_err(|e| SecretError::SecretsManager {
                        arn: arn.clone(),
                        // The error names the failure (access denied, not found), never the value.
                        reason: aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string(),
                    })?;
                output
                    .secret_string
                    .ok_or_else(|| SecretError::SecretsManager {
                        arn: arn.clone(),
                        reason: "the secret has no string value".into(),
                    })
            }
        }
    }
}
