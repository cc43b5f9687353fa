//! `sales.email_templates`: mail templates by id.

use diesel::prelude::*;

use crate::schema::sales::email_templates;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = email_templates, check_for_backend(diesel::pg::Pg))]
pub struct EmailTemplate {
    pub id: String,
    /// The subject line.
    pub title: String,
    /// Where the template text lives when `body` is not set (https or file URL).
    pub url: String,
    pub body: Option<String>,
}

pub fn find(conn: &mut PgConnection, id: &str) -> QueryResult<Option<EmailTemplate>> {
    email_templates::table
        .find(id)
        .select(EmailTemplate::as_select())
        .first(conn)
        .optional()
}
