//! Validation of user-chosen names. Each function returns a message that names the field and
//! says what is allowed, ready for a 90400 answer.

pub const MAX_NAME_LEN: usize = 64;

fn check(
    field: &str,
    value: &str,
    allowed: impl Fn(char) -> bool,
    rule: &str,
) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.chars().count() > MAX_NAME_LEN {
        return Err(format!(
            "{field} is {} characters long; use at most {MAX_NAME_LEN}",
            value.chars().count()
        ));
    }
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(format!("{field} contains {bad:?}; {rule}"));
    }
    Ok(())
}

/// Cluster, backup and key names: letters, digits, `_` and `-`.
pub fn validate_resource_name(field: &str, value: &str) -> Result<(), String> {
    check(
        field,
        value,
        |c| c.is_ascii_alphanumeric() || c == '_' || c == '-',
        "use letters, digits, '_' and '-' only",
    )
}

/// Project names are shown to people: any printable characters.
pub fn validate_display_name(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    check(
        field,
        value,
        |c| !c.is_control(),
        "control characters are not allowed",
    )
}

pub fn validate_region_id(value: &str) -> Result<(), String> {
    check(
        "regionId",
        value,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
        "use lower-case letters, digits and '-' only",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_with_the_field_named() {
        assert!(validate_resource_name("clusterName", "prod-1_a").is_ok());
        let err = validate_resource_name("clusterName", "a b").unwrap_err();
        assert!(err.starts_with("clusterName contains ' '"), "{err}");
        let err = validate_resource_name("clusterName", &"x".repeat(65)).unwrap_err();
        assert!(err.contains("65 characters"), "{err}");
        assert!(validate_resource_name("clusterName", "").is_err());
        assert!(validate_display_name("projectName", "Team A / prod").is_ok());
        assert!(validate_display_name("projectName", "  ").is_err());
        assert!(validate_region_id("eu-west-1").is_ok());
        assert!(validate_region_id("EU").is_err());
    }
}
