//! Why a signature does not fit a model, or two signatures do not fit each other: the mismatch
//! list every binding step reports (all problems at once, one per line).
//!
//! The types live here, with the patch engine, because binding signatures to each other
//! ([`crate::Patcher::new`]) finds shape disagreements without any model; checking against a
//! model's tensors is `rws_runtime::compat`, which knows ONNX.

use std::fmt;

/// One reason a signature does not fit a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The model has no initializer of this name.
    Missing { name: String },
    /// The model's initializer has another shape.
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// The model's initializer is not f32, so it cannot be patched.
    NotFloat { name: String, dtype: String },
    /// The tensor is the output of a `Constant` node, not an initializer.
    InConstantNode { name: String },
    /// The model's initializer is there but its data cannot be read (its byte count does not
    /// match its shape, or it is stored as external data).
    Unreadable { name: String, reason: String },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Missing { name } => write!(f, "'{name}': no such initializer in the model"),
            Mismatch::Shape {
                name,
                expected,
                found,
            } => write!(
                f,
                "'{name}': model has shape {expected:?}, signature has {found:?}"
            ),
            Mismatch::NotFloat { name, dtype } => {
                write!(f, "'{name}': model stores it as {dtype}, only f32 can be patched")
            }
            Mismatch::Unreadable { name, reason } => {
                write!(f, "'{name}': the model's data for it is unusable: {reason}")
            }
            Mismatch::InConstantNode { name } => write!(
                f,
                "'{name}': held in a Constant node, not an initializer; re-export with weights as initializers"
            ),
        }
    }
}

/// A non-empty list of mismatches, displayed one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Mismatches(pub Vec<Mismatch>);

impl fmt::Display for Mismatches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} mismatch(es):", self.0.len())?;
        for m in &self.0 {
            write!(f, "\n  {m}")?;
        }
        Ok(())
    }
}
