//! Identifier formats of `design/api.md`: projects `proj-<hex>`, clusters `in01-<16 hex>`,
//! API keys `key-<hex>`, jobs `job-<hex>`, backups `backup<N>_<hex>`.

use rand::Rng;

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    hex::encode(buf)
}

pub fn new_project_id() -> String {
    format!("proj-{}", random_hex(10))
}

pub fn new_cluster_id() -> String {
    format!("in01-{}", random_hex(8))
}

pub fn new_api_key_id() -> String {
    format!("key-{}", random_hex(10))
}

pub fn new_job_id() -> String {
    format!("job-{}", random_hex(12))
}

pub fn new_backup_id(sequence: u64) -> String {
    format!("backup{sequence}_{}", random_hex(8))
}

/// The secret half of an API key: 32 random bytes, shown once, stored only as a hash.
pub fn new_api_key_secret() -> String {
    format!("bsk_{}", random_hex(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_documented_shape() {
        let cluster = new_cluster_id();
        assert!(
            cluster.starts_with("in01-") && cluster.len() == 5 + 16,
            "{cluster}"
        );
        assert!(new_project_id().starts_with("proj-"));
        assert!(new_job_id().starts_with("job-"));
        assert!(new_backup_id(3).starts_with("backup3_"));
        assert_ne!(new_api_key_secret(), new_api_key_secret());
    }
}
