//! SQL text with its values kept apart: the planner writes `?` where a value goes and pushes the value, so no value
//! from a request (nor a goal name or time zone from the database) is ever spliced into the text. Execution hands
//! the values to the `clickhouse` crate's client-side `.bind()`; the SQL catalogue renders them as quoted literals.

/// One value for one `?`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    UInt(u64),
}

impl Value {
    /// The value as a ClickHouse literal: strings single-quoted with backslash escapes (what `.bind()` does too).
    pub fn literal(&self) -> String {
        match self {
            Value::UInt(n) => n.to_string(),
            Value::Str(s) => {
                let mut out = String::with_capacity(s.len() + 2);
                out.push('\'');
                for ch in s.chars() {
                    match ch {
                        '\\' => out.push_str("\\\\"),
                        '\'' => out.push_str("\\'"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        '\0' => out.push_str("\\0"),
                        c => out.push(c),
                    }
                }
                out.push('\'');
                out
            }
        }
    }
}

/// A statement being built: text with `?` placeholders and the values, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    pub text: String,
    pub values: Vec<Value>,
}

impl Sql {
    pub fn new() -> Self {
        Sql::default()
    }

    /// Text written by the planner, no values.
    pub fn from_text(text: &str) -> Sql {
        let mut sql = Sql::new();
        sql.push(text);
        sql
    }

    /// Appends SQL text written by the planner. It must hold no `?`: placeholders come only from [`Sql::value`].
    pub fn push(&mut self, text: &str) -> &mut Self {
        debug_assert!(!text.contains('?'), "planner text with a question mark: {text}");
        self.text.push_str(text);
        self
    }

    pub fn value(&mut self, value: Value) -> &mut Self {
        self.text.push('?');
        self.values.push(value);
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.value(Value::Str(s.to_owned()))
    }

    pub fn uint(&mut self, n: u64) -> &mut Self {
        self.value(Value::UInt(n))
    }

    pub fn append(&mut self, other: Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.values.extend(other.values);
        self
    }

    /// The statement with every value written in as a literal (for the catalogue and for logs).
    pub fn with_literals(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 16 * self.values.len());
        let mut values = self.values.iter();
        for ch in self.text.chars() {
            if ch == '?' {
                out.push_str(&values.next().map(Value::literal).unwrap_or_default());
            } else {
                out.push(ch);
            }
        }
        out
    }

    /// The statement ready to send, its values bound by the client.
    pub fn bind(&self, client: &clickhouse::Client) -> clickhouse::query::Query {
        let mut query = client.query(&self.text);
        for value in &self.values {
            query = match value {
                Value::Str(s) => query.bind(s.as_str()),
                Value::UInt(n) => query.bind(*n),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(Value::Str("it's a \\ test".into()).literal(), "'it\\'s a \\\\ test'");
        let mut sql = Sql::new();
        sql.push("SELECT ").str("a'b").push(", ").uint(7);
        assert_eq!(sql.with_literals(), "SELECT 'a\\'b', 7");
        assert_eq!(sql.values.len(), 2);
    }
}
