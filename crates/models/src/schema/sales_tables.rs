// @generated automatically by Diesel CLI.

pub mod sales {
    diesel::table! {
        sales.email_templates (id) {
            id -> Varchar,
            title -> Varchar,
            url -> Varchar,
            body -> Nullable<Text>,
        }
    }
}
