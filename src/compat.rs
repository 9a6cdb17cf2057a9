//! Whether a signature fits a model: every tensor it patches must exist in the model as an f32
//! initializer of the same shape.
//!
//! Compatibility is by names and shapes, not by the fingerprint alone: the paper's transfer claim
//! is that a signature extracted on one model patches another of the same architecture (another
//! dataset, an updated model), and that is exactly "same initializer names and shapes".

use std::fmt;

use crate::format::SignatureFile;
use crate::onnx::{InitializerInfo, OnnxDataType};

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

/// Lists every way `sig` does not fit a model with these initializers and `Constant`-node
/// outputs. Empty means compatible.
pub fn check(
    sig: &SignatureFile,
    initializers: &[InitializerInfo],
    constant_outputs: &[String],
) -> Vec<Mismatch> {
    sig.tensors()
        .iter()
        .filter_map(|t| {
            let name = t.name.clone();
            match initializers.iter().find(|i| i.name == t.name) {
                None if constant_outputs.contains(&t.name) => {
                    Some(Mismatch::InConstantNode { name })
                }
                None => Some(Mismatch::Missing { name }),
                Some(i) if i.dtype != OnnxDataType::Float => Some(Mismatch::NotFloat {
                    name,
                    dtype: i.dtype.to_string(),
                }),
                Some(i) if i.shape != t.shape => Some(Mismatch::Shape {
                    name,
                    expected: i.shape.clone(),
                    found: t.shape.clone(),
                }),
                Some(_) => None,
            }
        })
        .collect()
}
