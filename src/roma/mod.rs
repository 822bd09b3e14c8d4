//! The ROMA Connect FDI client: endpoints, credentials and authentication, the reset call,
//! and the classification of its outcome.
//!
//! - [`endpoint`]: where a call may go ([`EndpointPolicy`], [`Endpoint`]).
//! - [`credentials`]: token, AK/SK or IAM password ([`Credentials`]), from a Secret or the
//!   environment; secret values are `secrecy`'s [`SecretString`]s.
//! - [`client`]: the call itself ([`RomaClient::reset`]), AK/SK signing with `roma-signer`,
//!   the IAM token exchange and cache (`iam`).
//! - [`response`]: reading answers as the official SDK does, sanitising what is copied out.
//! - [`outcome`]: [`ResetOutcome`] and [`classify`] into DESIGN section 3.5's classes.

pub mod client;
pub mod credentials;
pub mod endpoint;
mod iam;
pub mod outcome;
pub mod response;
mod transport;

pub use client::{
    ClientConfig, ClientError, IamEndpointError, RESET_CONTENT_TYPE, ResetRequest, RomaClient,
    USER_AGENT,
};
pub use credentials::{Credentials, CredentialsError};
pub use endpoint::{
    DEFAULT_ALLOWED_ENDPOINT, DEFAULT_ALLOWED_IAM_ENDPOINTS, Endpoint, EndpointError,
    EndpointPolicy, IamEndpointPolicy,
};
pub use outcome::{OutcomeClass, ResetOutcome, classify};
pub use secrecy::{ExposeSecret, SecretString};
