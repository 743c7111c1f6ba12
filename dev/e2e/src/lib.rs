//! End-to-end tests that no single service's tests can hold: they drive the hub and the workers together, in one
//! process, against the real stores. The tests are in `tests/`; this library is empty.
