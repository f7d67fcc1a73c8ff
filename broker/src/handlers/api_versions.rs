//! ApiVersions: advertises the dispatch table (`handlers::SUPPORTED`). Follows KIP-511: a request at a
//! version we do not know is answered in the v0 format with
//! UNSUPPORTED_VERSION and our ranges, so the client can retry lower.

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;
use sluice_protocol::message::{encode_response, Request};

use super::api::{ApiSpec, HandleError};
use crate::error::code;
use kafka_protocol::messages::ApiKey;

/// Answers with `supported`, the table dispatch serves.
pub fn handle(req: &Request, supported: &[ApiSpec]) -> Result<Bytes, HandleError> {
    let spec = supported
        .iter()
        .find(|s| s.key == ApiKey::ApiVersions)
        .ok_or(HandleError::UnsupportedApi(ApiKey::ApiVersions))?;
    let version = req.version();
    let correlation_id = req.header.correlation_id;
    if version < spec.min || version > spec.max {
        let resp = advertised(supported).with_error_code(code::of(ResponseError::UnsupportedVersion));
        return Ok(encode_response("ApiVersions", correlation_id, 0, &resp)?);
    }
    let body: ApiVersionsRequest = req.decode("ApiVersions")?;
    let resp = if version >= 3
        && !(valid_software_field(&body.client_software_name) && valid_software_field(&body.client_software_version))
    {
        ApiVersionsResponse::default().with_error_code(code::of(ResponseError::InvalidRequest))
    } else {
        advertised(supported)
    };
    Ok(encode_response("ApiVersions", correlation_id, version, &resp)?)
}

fn advertised(supported: &[ApiSpec]) -> ApiVersionsResponse {
    let api_keys = supported
        .iter()
        .map(|s| ApiVersion::default().with_api_key(s.key as i16).with_min_version(s.min).with_max_version(s.max))
        .collect();
    ApiVersionsResponse::default().with_api_keys(api_keys)
}

/// Kafka's rule for client_software_name/version: `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    let inner_ok = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.';
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() && b.iter().all(inner_ok),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_names_follow_kafka_pattern() {
        assert!(valid_software_field("librdkafka"));
        assert!(valid_software_field("2.0.2"));
        assert!(valid_software_field("a"));
        assert!(!valid_software_field(""));
        assert!(!valid_software_field("-x"));
        assert!(!valid_software_field("x y"));
    }
}
