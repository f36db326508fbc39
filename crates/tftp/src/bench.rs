//! The `sockit lab bench tftp` benchmark (filled in below).
