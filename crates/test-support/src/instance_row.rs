//! One `hardware.instance_info` row for a test: the columns the test cares about, and
//! the table's own defaults for the rest (nothing is written that was not asked for,
//! beyond the columns every row needs).

/// An instance row to insert: `ACTIVE` in `us-east-1`, image `ami-1`, commit hash `h`,
/// `g4dn.xlarge`, cloud id `aws-<name>`, unless told otherwise. Every other column keeps
/// the table's default (never heard from, capacity 0, no IP, no credential) until set.
///
/// ```ignore
/// db.add_instance(&InstanceRow::new("a").capacity(4).heard_at(1).ip("10.0.0.1"));
/// ```
#[derive(Debug, Clone)]
pub struct InstanceRow {
    name: String,
    cloud_provider_id: String,
    aws_ami_id: String,
    location: String,
    status: String,
    commit_hash: String,
    aws_instance_type: String,
    /// Optional columns given, as (column, SQL value).
    set: Vec<(&'static str, String)>,
}

impl InstanceRow {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            cloud_provider_id: format!("aws-{name}"),
            aws_ami_id: "ami-1".to_owned(),
            location: "us-east-1".to_owned(),
            status: "ACTIVE".to_owned(),
            commit_hash: "h".to_owned(),
            aws_instance_type: "g4dn.xlarge".to_owned(),
            set: Vec::new(),
        }
    }

    pub fn cloud_id(mut self, id: &str) -> Self {
        id.clone_into(&mut self.cloud_provider_id);
        self
    }

    pub fn ami(mut self, ami: &str) -> Self {
        ami.clone_into(&mut self.aws_ami_id);
        self
    }

    pub fn region(mut self, region: &str) -> Self {
        region.clone_into(&mut self.location);
        self
    }

    pub fn status(mut self, status: &str) -> Self {
        status.clone_into(&mut self.status);
        self
    }

    pub fn commit_hash(mut self, commit_hash: &str) -> Self {
        commit_hash.clone_into(&mut self.commit_hash);
        self
    }

    pub fn instance_type(mut self, instance_type: &str) -> Self {
        instance_type.clone_into(&mut self.aws_instance_type);
        self
    }

    /// `mandelbox_capacity`.
    pub fn capacity(self, capacity: i64) -> Self {
        self.with("mandelbox_capacity", capacity.to_string())
    }

    /// `last_updated_utc_unix_ms`: heard from at this time (the default, -1, is never).
    pub fn heard_at(self, unix_ms: i64) -> Self {
        self.with("last_updated_utc_unix_ms", unix_ms.to_string())
    }

    /// `creation_time_utc_unix_ms`.
    pub fn created_at(self, unix_ms: i64) -> Self {
        self.with("creation_time_utc_unix_ms", unix_ms.to_string())
    }

    /// `status_changed_utc_unix_ms`.
    pub fn status_changed_at(self, unix_ms: i64) -> Self {
        self.with("status_changed_utc_unix_ms", unix_ms.to_string())
    }

    pub fn ip(self, ip: &str) -> Self {
        self.with("ip", quoted(ip))
    }

    /// `host_token_sha256`, as stored: the hex digest given.
    pub fn host_token_digest(self, digest: &str) -> Self {
        self.with("host_token_sha256", quoted(digest))
    }

    /// `host_token_sha256` of this host credential, digested by the database.
    pub fn host_token(self, token: &str) -> Self {
        self.with(
            "host_token_sha256",
            format!(
                "encode(sha256(convert_to({}, 'UTF8')), 'hex')",
                quoted(token)
            ),
        )
    }

    fn with(mut self, column: &'static str, value: String) -> Self {
        self.set.retain(|(set, _)| *set != column);
        self.set.push((column, value));
        self
    }

    /// The `INSERT` statement.
    pub fn sql(&self) -> String {
        let mut columns = vec![
            "instance_name",
            "cloud_provider_id",
            "aws_ami_id",
            "location",
            "status",
            "commit_hash",
            "aws_instance_type",
        ];
        let mut values = vec![
            quoted(&self.name),
            quoted(&self.cloud_provider_id),
            quoted(&self.aws_ami_id),
            quoted(&self.location),
            quoted(&self.status),
            quoted(&self.commit_hash),
            quoted(&self.aws_instance_type),
        ];
        for (column, value) in &self.set {
            columns.push(column);
            values.push(value.clone());
        }
        format!(
            "INSERT INTO hardware.instance_info ({}) VALUES ({})",
            columns.join(", "),
            values.join(", ")
        )
    }
}

/// `text` as an SQL string literal.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::InstanceRow;

    #[test]
    fn writes_the_columns_asked_for_once_each() {
        let sql = InstanceRow::new("a'b")
            .region("eu-west-1")
            .capacity(3)
            .capacity(4)
            .heard_at(1)
            .sql();
        assert_eq!(
            sql,
            "INSERT INTO hardware.instance_info (instance_name, cloud_provider_id, aws_ami_id, \
             location, status, commit_hash, aws_instance_type, mandelbox_capacity, \
             last_updated_utc_unix_ms) VALUES ('a''b', 'aws-a''b', 'ami-1', 'eu-west-1', \
             'ACTIVE', 'h', 'g4dn.xlarge', 4, 1)"
        );
    }
}
