//! Request bodies in Kubernetes protobuf (`application/vnd.kubernetes.protobuf`), which
//! kubectl's typed clients send for `kubectl create namespace|secret|configmap`. Decoded to
//! JSON for the kinds that need it: Namespace, Secret, ConfigMap (with the usual ObjectMeta
//! fields). Answers are always JSON, which those clients also accept.

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The media type of Kubernetes protobuf.
pub(crate) const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// One protobuf field: number and payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Why a protobuf body cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtobufError {
    /// The body ends inside a varint or a field.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A varint of more than 10 bytes.
    #[error("varint too long")]
    VarintTooLong,
    /// A length that does not fit in memory.
    #[error("field length: {0}")]
    Length(#[from] std::num::TryFromIntError),
    /// A wire type this decoder does not know.
    #[error("unsupported wire type {0}")]
    WireType(u64),
    /// A string field that is not UTF-8.
    #[error("invalid UTF-8 in a string field")]
    NotUtf8(#[from] std::string::FromUtf8Error),
    /// No `k8s\0` prefix.
    #[error("not a Kubernetes protobuf body (no k8s\\0 prefix)")]
    NoMagic,
    /// A kind this server decodes only from JSON.
    #[error("protobuf bodies of kind {0:?} are not supported by this server; send JSON")]
    Kind(String),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ProtobufError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or(ProtobufError::Truncated("varint"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ProtobufError::VarintTooLong)
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ProtobufError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let number = key >> 3;
        let field = match key & 7 {
            0 => Field::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?)?;
                let bytes = buf
                    .get(pos..pos + len)
                    .ok_or(ProtobufError::Truncated("field"))?;
                pos += len;
                Field::Bytes(bytes)
            }
            5 => {
                pos += 4;
                Field::Fixed
            }
            other => return Err(ProtobufError::WireType(other)),
        };
        out.push((number, field));
    }
    Ok(out)
}

fn text(bytes: &[u8]) -> Result<String, ProtobufError> {
    Ok(String::from_utf8(bytes.to_vec())?)
}

/// A `map<string, string>` or `map<string, bytes>` entry.
fn map_entry(bytes: &[u8], base64_values: bool) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => key = text(b)?,
            (2, Field::Bytes(b)) if base64_values => {
                value = json!(base64::engine::general_purpose::STANDARD.encode(b));
            }
            (2, Field::Bytes(b)) => value = json!(text(b)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn insert_map(target: &mut Map<String, Value>, name: &str, entry: (String, Value)) {
    let map = target.entry(name).or_insert_with(|| json!({}));
    if let Some(map) = map.as_object_mut() {
        map.insert(entry.0, entry.1);
    }
}

fn push_list(target: &mut Map<String, Value>, name: &str, item: Value) {
    let list = target.entry(name).or_insert_with(|| json!([]));
    if let Some(list) = list.as_array_mut() {
        list.push(item);
    }
}

fn object_meta(bytes: &[u8]) -> Result<Value, ProtobufError> {
    let mut meta = Map::new();
    for (n, f) in fields(bytes)? {
        match (n, f) {
            (1, Field::Bytes(b)) => {
                meta.insert("name".into(), json!(text(b)?));
            }
            (2, Field::Bytes(b)) => {
                meta.insert("generateName".into(), json!(text(b)?));
            }
            (3, Field::Bytes(b)) => {
                meta.insert("namespace".into(), json!(text(b)?));
            }
            (6, Field::Bytes(b)) => {
                meta.insert("resourceVersion".into(), json!(text(b)?));
            }
            (11, Field::Bytes(b)) => insert_map(&mut meta, "labels", map_entry(b, false)?),
            (12, Field::Bytes(b)) => insert_map(&mut meta, "annotations", map_entry(b, false)?),
            (14, Field::Bytes(b)) => push_list(&mut meta, "finalizers", json!(text(b)?)),
            _ => {}
        }
    }
    meta.retain(|_, v| v.as_str() != Some(""));
    Ok(Value::Object(meta))
}

fn object(kind: &str, bytes: &[u8]) -> Result<Map<String, Value>, ProtobufError> {
    let mut obj = Map::new();
    for (n, f) in fields(bytes)? {
        let Field::Bytes(b) = f else {
            if let (5 | 4, Field::Varint(v)) = (n, &f)
                && matches!((kind, n), ("Secret", 5) | ("ConfigMap", 4))
            {
                obj.insert("immutable".into(), json!(*v != 0));
            }
            continue;
        };
        match (kind, n) {
            (_, 1) => {
                obj.insert("metadata".into(), object_meta(b)?);
            }
            ("Namespace", 2) => {
                let mut spec = Map::new();
                for (m, g) in fields(b)? {
                    if let (1, Field::Bytes(x)) = (m, g) {
                        push_list(&mut spec, "finalizers", json!(text(x)?));
                    }
                }
                obj.insert("spec".into(), Value::Object(spec));
            }
            ("Secret", 2) => insert_map(&mut obj, "data", map_entry(b, true)?),
            ("Secret", 3) => {
                obj.insert("type".into(), json!(text(b)?));
            }
            ("Secret", 4) => insert_map(&mut obj, "stringData", map_entry(b, false)?),
            ("ConfigMap", 2) => insert_map(&mut obj, "data", map_entry(b, false)?),
            ("ConfigMap", 3) => insert_map(&mut obj, "binaryData", map_entry(b, true)?),
            _ => {}
        }
    }
    Ok(obj)
}

/// Decodes a protobuf request body of one of the supported kinds to JSON.
pub(crate) fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in fields(rest)? {
        match (n, f) {
            (1, Field::Bytes(type_meta)) => {
                for (m, g) in fields(type_meta)? {
                    match (m, g) {
                        (1, Field::Bytes(b)) => api_version = text(b)?,
                        (2, Field::Bytes(b)) => kind = text(b)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    if !matches!(kind.as_str(), "Namespace" | "Secret" | "ConfigMap") {
        return Err(ProtobufError::Kind(kind));
    }
    let mut obj = object(&kind, raw)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_kubectl_create_sends() {
        // `kubectl create namespace data` and `kubectl create secret generic s --from-literal=a=b`,
        // captured from kubectl 1.32.
        let namespace = b"k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x1c\n\x14\n\x04data\x12\x00\x1a\x00\"\x00*\x002\x008\x00B\x00\x12\x00\x1a\x02\n\x00\x1a\x00\"\x00";
        assert_eq!(
            decode(namespace).ok(),
            Some(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "data"}, "spec": {}})
            )
        );
        let secret = b"k8s\x00\n\x0c\n\x02v1\x12\x06Secret\x12!\n\x15\n\x01s\x12\x00\x1a\x04data\"\x00*\x002\x008\x00B\x00\x12\x06\n\x01a\x12\x01b\x1a\x00\x1a\x00\"\x00";
        assert_eq!(
            decode(secret).ok(),
            Some(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "namespace": "data"}, "data": {"a": "Yg=="}, "type": ""}))
        );
        assert!(matches!(decode(b"{}"), Err(ProtobufError::NoMagic)));
        assert!(matches!(
            decode(b"k8s\x00\n\x0c\n\x02v1\x12\x06Secre"),
            Err(ProtobufError::Truncated(_))
        ));
    }
}
