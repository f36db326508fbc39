//! Basic services.
