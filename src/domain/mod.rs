//! Rules with no I/O: identifiers, names, roles and privileges, backup vocabulary. Everything here is a pure
//! function or a value type, tested without a database or a network.

pub mod access;
pub mod backups;
pub mod clusters;
pub mod ids;
pub mod names;
pub mod restore;
pub mod schedule;
