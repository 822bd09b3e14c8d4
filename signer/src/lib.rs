//! SDK-HMAC-SHA256 request signing, byte for byte as the official Huawei Cloud SDK does it.
//!
//! Shared by the ROMA client (which signs) and the ROMA simulator (which verifies).
