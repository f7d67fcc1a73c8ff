//! What the handlers share: an API's served version range, and what a
//! request's handling ends in (an answer, none, or a closed connection).

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use sluice_protocol::message::{EncodeError, RequestError};

/// An API we serve and the versions of it we handle completely.
#[derive(Debug, Clone, Copy)]
pub struct ApiSpec {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

/// Failures that end the connection (Kafka closes it for these too).
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("{0:?} is not supported by this broker")]
    UnsupportedApi(ApiKey),
    #[error("{api:?} v{version} is not supported (we serve v{min}-v{max})")]
    UnsupportedVersion { api: ApiKey, version: i16, min: i16, max: i16 },
    #[error(transparent)]
    Decode(#[from] RequestError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// A response to write, once ready; `None` means none is sent (acks=0).
pub type Reply = Result<Option<Bytes>, HandleError>;

/// A request whose effects are ordered but whose answer is still coming.
pub type LaterReply = std::pin::Pin<Box<dyn std::future::Future<Output = Reply>>>;
