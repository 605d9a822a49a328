//! A compact response matrix: model and item ids interned once, responses stored by model
//! and by item (the two halves of each sweep read one orientation each). Dense `u8` storage
//! with a missing code when most cells are observed, compressed sparse rows otherwise.

use std::collections::HashMap;

/// Interning hashes tens of millions of short ids; a fast non-cryptographic hasher matters.
type Ids = HashMap<String, u32, foldhash::fast::RandomState>;

use super::error::{IrtError, Result};

/// Code of an unobserved cell in dense storage.
pub const MISSING: u8 = 2;

/// Dense storage pays off above this share of observed cells.
const DENSE_ABOVE: f64 = 0.25;

#[derive(Debug, Clone)]
enum Storage {
    /// `by_model[j * n_items + i]` and `by_item[i * n_models + j]`: 0, 1 or MISSING.
    Dense { by_model: Vec<u8>, by_item: Vec<u8> },
    /// Compressed rows in both orientations.
    Sparse { by_model: Csr, by_item: Csr },
}

#[derive(Debug, Clone, Default)]
struct Csr {
    start: Vec<usize>,
    index: Vec<u32>,
    value: Vec<u8>,
}

impl Csr {
    /// Builds rows from (row, column, value) triples.
    fn build(
        n_rows: usize,
        triples: &[(u32, u32, bool)],
        row_of: impl Fn(&(u32, u32, bool)) -> (u32, u32),
    ) -> Self {
        let mut counts = vec![0usize; n_rows + 1];
        for t in triples {
            counts[row_of(t).0 as usize + 1] += 1;
        }
        for r in 0..n_rows {
            counts[r + 1] += counts[r];
        }
        let mut fill = counts.clone();
        let mut index = vec![0u32; triples.len()];
        let mut value = vec![0u8; triples.len()];
        for t in triples {
            let (r, c) = row_of(t);
            let at = fill[r as usize];
            index[at] = c;
            value[at] = t.2 as u8;
            fill[r as usize] += 1;
        }
        Csr {
            start: counts,
            index,
            value,
        }
    }
}

/// The responses of one fit: rows are models (subjects), columns are items.
#[derive(Debug, Clone)]
pub struct ResponseMatrix {
    pub models: Vec<String>,
    pub items: Vec<String>,
    storage: Storage,
    n_responses: usize,
}

/// Collects responses and interns ids, refusing duplicates when built.
#[derive(Debug, Default)]
pub struct MatrixBuilder {
    models: Ids,
    items: Ids,
    model_names: Vec<String>,
    item_names: Vec<String>,
    triples: Vec<(u32, u32, bool)>,
    last_model: Option<(String, u32)>,
    last_item: Option<u32>,
}

impl MatrixBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `n` more responses.
    pub fn reserve(&mut self, n: usize) {
        self.triples.reserve(n);
    }

    pub fn push(&mut self, model: &str, item: &str, correct: bool) {
        // Responses usually arrive grouped by model: skip the lookup for a repeated model.
        let m = match &self.last_model {
            Some((name, id)) if name == model => *id,
            _ => {
                let id = intern(&mut self.models, &mut self.model_names, model);
                self.last_model = Some((model.to_string(), id));
                id
            }
        };
        // Each model usually lists its items in the same order: try the item after the last
        // one before hashing.
        let guess = self.last_item.map_or(0, |i| i as usize + 1);
        let i = match self.item_names.get(guess) {
            Some(name) if name == item => guess as u32,
            _ => intern(&mut self.items, &mut self.item_names, item),
        };
        self.last_item = Some(i);
        self.triples.push((m, i, correct));
    }

    pub fn len(&self) -> usize {
        self.triples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.triples.is_empty()
    }

    /// Builds a matrix from a copy of what was pushed so far.
    #[cfg(test)]
    pub fn build_ref(&self, benchmark: &str) -> ResponseMatrix {
        MatrixBuilder {
            models: self.models.clone(),
            items: self.items.clone(),
            model_names: self.model_names.clone(),
            item_names: self.item_names.clone(),
            triples: self.triples.clone(),
            last_model: None,
            last_item: None,
        }
        .build(benchmark)
        .expect("valid test matrix")
    }

    /// Builds the matrix; `benchmark` only names the fit in errors.
    ///
    /// Models and items are numbered in sorted id order, not in the order rows arrived: a
    /// parallel scan delivers row groups in varying order, and every sum of a fit runs in
    /// index order, so canonical indices make fits bit-identical however the rows came.
    pub fn build(mut self, benchmark: &str) -> Result<ResponseMatrix> {
        if self.triples.is_empty() {
            return Err(IrtError::Empty(benchmark.to_string()));
        }
        let model_rank = canonical_order(&mut self.model_names);
        let item_rank = canonical_order(&mut self.item_names);
        for t in &mut self.triples {
            *t = (model_rank[t.0 as usize], item_rank[t.1 as usize], t.2);
        }
        let (n_models, n_items) = (self.model_names.len(), self.item_names.len());
        let n = self.triples.len();
        let density = n as f64 / (n_models as f64 * n_items as f64);
        let duplicate = |m: u32, i: u32| IrtError::Duplicate {
            benchmark: benchmark.to_string(),
            model_id: self.model_names[m as usize].clone(),
            item_id: self.item_names[i as usize].clone(),
        };
        let storage = if density > DENSE_ABOVE {
            // Filling the cells finds duplicates without sorting; the first in index order
            // is named, so the message does not depend on arrival order either.
            let mut by_model = vec![MISSING; n_models * n_items];
            let mut first_duplicate: Option<(u32, u32)> = None;
            for &(m, i, y) in &self.triples {
                let cell = &mut by_model[m as usize * n_items + i as usize];
                if *cell != MISSING {
                    first_duplicate = Some(first_duplicate.map_or((m, i), |d| d.min((m, i))));
                }
                *cell = y as u8;
            }
            if let Some((m, i)) = first_duplicate {
                return Err(duplicate(m, i));
            }
            self.triples = Vec::new();
            let mut by_item = vec![MISSING; n_models * n_items];
            for (m, row) in by_model.chunks_exact(n_items).enumerate() {
                for (i, &y) in row.iter().enumerate() {
                    by_item[i * n_models + m] = y;
                }
            }
            Storage::Dense { by_model, by_item }
        } else {
            self.triples.sort_unstable_by_key(|t| (t.0, t.1));
            if let Some(w) = self
                .triples
                .windows(2)
                .find(|w| (w[0].0, w[0].1) == (w[1].0, w[1].1))
            {
                return Err(duplicate(w[0].0, w[0].1));
            }
            Storage::Sparse {
                by_model: Csr::build(n_models, &self.triples, |t| (t.0, t.1)),
                by_item: Csr::build(n_items, &self.triples, |t| (t.1, t.0)),
            }
        };
        Ok(ResponseMatrix {
            models: self.model_names,
            items: self.item_names,
            storage,
            n_responses: n,
        })
    }
}

/// Sorts `names` and returns, for each old index, its new one.
fn canonical_order(names: &mut Vec<String>) -> Vec<u32> {
    let mut order: Vec<u32> = (0..names.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
    let mut rank = vec![0u32; names.len()];
    for (new, &old) in order.iter().enumerate() {
        rank[old as usize] = new as u32;
    }
    let mut old: Vec<Option<String>> = std::mem::take(names).into_iter().map(Some).collect();
    *names = order
        .iter()
        .map(|&o| old[o as usize].take().expect("each index once"))
        .collect();
    rank
}

fn intern(ids: &mut Ids, names: &mut Vec<String>, key: &str) -> u32 {
    if let Some(&id) = ids.get(key) {
        return id;
    }
    let id = names.len() as u32;
    names.push(key.to_string());
    ids.insert(key.to_string(), id);
    id
}

impl ResponseMatrix {
    /// A dense matrix from model-major cells: `Some(correct)` or `None` for missing.
    /// Used by the simulator, which has no ids to intern.
    pub fn from_dense(
        models: Vec<String>,
        items: Vec<String>,
        cells: &[Option<bool>],
    ) -> Result<Self> {
        let (n_models, n_items) = (models.len(), items.len());
        if cells.len() != n_models * n_items {
            return Err(IrtError::Invalid(format!(
                "{} cells for {n_models} models x {n_items} items",
                cells.len()
            )));
        }
        let code = |c: &Option<bool>| c.map_or(MISSING, |y| y as u8);
        let by_model: Vec<u8> = cells.iter().map(code).collect();
        let mut by_item = vec![MISSING; cells.len()];
        for j in 0..n_models {
            for i in 0..n_items {
                by_item[i * n_models + j] = by_model[j * n_items + i];
            }
        }
        let n_responses = by_model.iter().filter(|&&v| v != MISSING).count();
        if n_responses == 0 {
            return Err(IrtError::Empty("simulated matrix".into()));
        }
        Ok(Self {
            models,
            items,
            storage: Storage::Dense { by_model, by_item },
            n_responses,
        })
    }

    pub fn n_models(&self) -> usize {
        self.models.len()
    }

    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    pub fn n_responses(&self) -> usize {
        self.n_responses
    }

    pub fn is_dense(&self) -> bool {
        matches!(self.storage, Storage::Dense { .. })
    }

    /// Model `j`'s cells (0, 1 or [`MISSING`], one per item) when storage is dense, for
    /// kernels that process whole rows without branches.
    #[inline]
    pub fn dense_model_row(&self, j: usize) -> Option<&[u8]> {
        match &self.storage {
            Storage::Dense { by_model, .. } => {
                Some(&by_model[j * self.items.len()..(j + 1) * self.items.len()])
            }
            Storage::Sparse { .. } => None,
        }
    }

    /// Item `i`'s cells (one per model) when storage is dense.
    #[inline]
    pub fn dense_item_row(&self, i: usize) -> Option<&[u8]> {
        match &self.storage {
            Storage::Dense { by_item, .. } => {
                Some(&by_item[i * self.models.len()..(i + 1) * self.models.len()])
            }
            Storage::Sparse { .. } => None,
        }
    }

    /// Calls `f(item, correct)` for every response of model `j`.
    #[inline]
    pub fn for_model(&self, j: usize, mut f: impl FnMut(usize, bool)) {
        match &self.storage {
            Storage::Dense { by_model, .. } => {
                let n = self.items.len();
                for (i, &y) in by_model[j * n..(j + 1) * n].iter().enumerate() {
                    if y != MISSING {
                        f(i, y == 1);
                    }
                }
            }
            Storage::Sparse { by_model, .. } => {
                let range = by_model.start[j]..by_model.start[j + 1];
                for (&i, &y) in by_model.index[range.clone()]
                    .iter()
                    .zip(&by_model.value[range])
                {
                    f(i as usize, y == 1);
                }
            }
        }
    }

    /// Calls `f(model, correct)` for every response to item `i`.
    #[inline]
    pub fn for_item(&self, i: usize, mut f: impl FnMut(usize, bool)) {
        match &self.storage {
            Storage::Dense { by_item, .. } => {
                let n = self.models.len();
                for (j, &y) in by_item[i * n..(i + 1) * n].iter().enumerate() {
                    if y != MISSING {
                        f(j, y == 1);
                    }
                }
            }
            Storage::Sparse { by_item, .. } => {
                let range = by_item.start[i]..by_item.start[i + 1];
                for (&j, &y) in by_item.index[range.clone()]
                    .iter()
                    .zip(&by_item.value[range])
                {
                    f(j as usize, y == 1);
                }
            }
        }
    }

    /// Bytes held by the responses (both orientations).
    pub fn storage_bytes(&self) -> usize {
        match &self.storage {
            Storage::Dense { by_model, by_item } => by_model.len() + by_item.len(),
            Storage::Sparse { by_model, by_item } => [by_model, by_item]
                .iter()
                .map(|c| c.start.len() * 8 + c.index.len() * 4 + c.value.len())
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each model's (item, correct) and each item's (model, correct).
    type Lists = Vec<Vec<(usize, bool)>>;

    fn collect(m: &ResponseMatrix) -> (Lists, Lists) {
        let rows = (0..m.n_models()).map(|j| {
            let mut v = Vec::new();
            m.for_model(j, |i, y| v.push((i, y)));
            v
        });
        let cols = (0..m.n_items()).map(|i| {
            let mut v = Vec::new();
            m.for_item(i, |j, y| v.push((j, y)));
            v
        });
        (rows.collect(), cols.collect())
    }

    #[test]
    fn dense_and_sparse_agree() {
        let mut dense = MatrixBuilder::new();
        dense.push("m0", "a", true);
        dense.push("m0", "b", false);
        dense.push("m1", "b", true);
        let dense = dense.build("t").unwrap();
        assert!(dense.is_dense());
        let (rows, cols) = collect(&dense);
        assert_eq!(rows, vec![vec![(0, true), (1, false)], vec![(1, true)]]);
        assert_eq!(cols, vec![vec![(0, true)], vec![(0, false), (1, true)]]);

        let mut sparse = MatrixBuilder::new();
        for m in 0..10 {
            sparse.push(&format!("m{m}"), &format!("i{m}"), m % 2 == 0);
        }
        let sparse = sparse.build("t").unwrap();
        assert!(!sparse.is_dense());
        let (rows, cols) = collect(&sparse);
        assert_eq!(rows[3], vec![(3, false)]);
        assert_eq!(cols[4], vec![(4, true)]);
        assert_eq!(sparse.n_responses(), 10);
    }

    #[test]
    fn duplicates_and_empty_are_errors() {
        let mut b = MatrixBuilder::new();
        b.push("m", "i", true);
        b.push("m", "i", false);
        let e = b.build("gsm8k").unwrap_err().to_string();
        assert!(
            e.contains("model `m`") && e.contains("item `i`") && e.contains("gsm8k"),
            "{e}"
        );
        assert!(MatrixBuilder::new()
            .build("x")
            .unwrap_err()
            .to_string()
            .contains("empty source"));
    }
}
