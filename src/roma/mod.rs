//! The ROMA Connect FDI client: endpoints, credentials and authentication, the reset call,
//! and the classification of its outcome.
