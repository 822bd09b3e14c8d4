//! A ROMA Connect FDI (and IAM) simulator: the reset endpoint, token and AK/SK verification.
