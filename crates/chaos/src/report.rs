//! The chaos table: one row per scenario.

/// One scenario's outcome.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: &'static str,
    /// Answers by status, or what the scenario counted.
    pub outcomes: String,
    /// How the service came back.
    pub recovery: String,
    /// The invariants of assignment after it.
    pub invariants: String,
    /// What was lost: it must be nothing.
    pub lost: String,
    pub notes: String,
    pub passed: bool,
}

/// The rows as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | outcomes | recovery | invariants | lost | notes | passed |\n|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            row.scenario,
            row.outcomes,
            row.recovery,
            row.invariants,
            row.lost,
            row.notes,
            if row.passed { "yes" } else { "NO" }
        ));
    }
    out
}
