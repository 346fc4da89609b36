//! Engine tests: the `plan` command and `engine::decide` rule by rule.
