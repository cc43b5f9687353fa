//! Hand-written SQL that diesel prepares once per connection and reuses. diesel's
//! `sql_query` is parsed and planned again on every call; on the assignment path that
//! planning was about 40% of the database's work.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Untyped};

enum Piece<'a> {
    Sql(&'static str),
    Text(&'a str),
    BigInt(i64),
    Bool(bool),
    TextArray(Vec<&'a str>),
    NullableTextArray(Vec<Option<&'a str>>),
    BigIntArray(Vec<i64>),
}

/// A statement built from fixed SQL and bound values. Its text is the cache key, so
/// the SQL pieces are `'static`: values only ever travel as bind parameters.
#[derive(Default)]
pub(crate) struct Prepared<'a> {
    pieces: Vec<Piece<'a>>,
}

impl<'a> Prepared<'a> {
    pub(crate) fn sql(mut self, sql: &'static str) -> Self {
        self.pieces.push(Piece::Sql(sql));
        self
    }

    pub(crate) fn text(mut self, value: &'a str) -> Self {
        self.pieces.push(Piece::Text(value));
        self
    }

    pub(crate) fn bigint(mut self, value: i64) -> Self {
        self.pieces.push(Piece::BigInt(value));
        self
    }

    pub(crate) fn bool(mut self, value: bool) -> Self {
        self.pieces.push(Piece::Bool(value));
        self
    }

    pub(crate) fn nullable_text_array(mut self, values: Vec<Option<&'a str>>) -> Self {
        self.pieces.push(Piece::NullableTextArray(values));
        self
    }

    pub(crate) fn text_array(mut self, values: Vec<&'a str>) -> Self {
        self.pieces.push(Piece::TextArray(values));
        self
    }

    pub(crate) fn bigint_array(mut self, values: Vec<i64>) -> Self {
        self.pieces.push(Piece::BigIntArray(values));
        self
    }
}

impl QueryFragment<Pg> for Prepared<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for piece in &self.pieces {
            match piece {
                Piece::Sql(sql) => out.push_sql(sql),
                Piece::Text(value) => out.push_bind_param::<Text, str>(value)?,
                Piece::BigInt(value) => out.push_bind_param::<BigInt, i64>(value)?,
                Piece::Bool(value) => out.push_bind_param::<Bool, bool>(value)?,
                Piece::TextArray(values) => {
                    out.push_bind_param::<Array<Text>, Vec<&str>>(values)?;
                }
                Piece::NullableTextArray(values) => {
                    out.push_bind_param::<Array<Nullable<Text>>, Vec<Option<&str>>>(values)?;
                }
                Piece::BigIntArray(values) => {
                    out.push_bind_param::<Array<BigInt>, Vec<i64>>(values)?;
                }
            }
        }
        Ok(())
    }
}

impl QueryId for Prepared<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared<'_> {
    type SqlType = Untyped;
}

impl RunQueryDsl<PgConnection> for Prepared<'_> {}
