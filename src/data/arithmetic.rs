//! A synthetic benchmark family whose difficulty a small transformer feels: multi-digit
//! addition and subtraction. What makes an item hard for a model that learns digit by digit is
//! the number of digits and of carries (or borrows) to propagate; both are kept as the
//! human-style difficulty proxies the paper correlates with IRT difficulty.

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The benchmark name of these items in `items` and `responses` tables.
pub const BENCHMARK: &str = "arithmetic";

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArithmeticItem {
    pub item_id: String,
    /// `Q: 4821 + 377 =`
    pub question: String,
    pub answer: String,
    /// Digits of the longer operand.
    pub n_digits: u32,
    /// Carries (addition) or borrows (subtraction) the column algorithm makes.
    pub n_carries: u32,
    pub subtraction: bool,
}

/// Carries of a + b, column by column.
pub fn carries(mut a: u64, mut b: u64) -> u32 {
    let (mut carry, mut count) = (0, 0);
    while a > 0 || b > 0 {
        let column = a % 10 + b % 10 + carry;
        carry = (column >= 10) as u64;
        count += carry as u32;
        a /= 10;
        b /= 10;
    }
    count
}

/// Borrows of a - b (a >= b), column by column.
pub fn borrows(mut a: u64, mut b: u64) -> u32 {
    let (mut borrow, mut count) = (0u64, 0);
    while a > 0 || b > 0 {
        let (top, bottom) = (a % 10, b % 10 + borrow);
        borrow = (top < bottom) as u64;
        count += borrow as u32;
        a /= 10;
        b /= 10;
    }
    count
}

fn number(rng: &mut ChaCha8Rng, digits: u32) -> u64 {
    if digits <= 1 {
        return rng.random_range(0..10);
    }
    rng.random_range(10u64.pow(digits - 1)..10u64.pow(digits))
}

/// `per_level` items for every digit count in `1..=max_digits` and both operations, seeded;
/// item ids are stable (`add-3-017`).
pub fn arithmetic_items(per_level: usize, max_digits: u32, seed: u64) -> Vec<ArithmeticItem> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut items = Vec::with_capacity(per_level * max_digits as usize * 2);
    for subtraction in [false, true] {
        for digits in 1..=max_digits {
            for k in 0..per_level {
                let a = number(&mut rng, digits);
                let b_digits = rng.random_range(1..=digits);
                let b = number(&mut rng, b_digits);
                let (a, b) = if subtraction && b > a { (b, a) } else { (a, b) };
                let (op, answer, n_carries) = if subtraction {
                    ('-', a - b, borrows(a, b))
                } else {
                    ('+', a + b, carries(a, b))
                };
                items.push(ArithmeticItem {
                    item_id: format!(
                        "{}-{digits}-{k:03}",
                        if subtraction { "sub" } else { "add" }
                    ),
                    question: format!("Q: {a} {op} {b} ="),
                    answer: answer.to_string(),
                    n_digits: digits,
                    n_carries,
                    subtraction,
                });
            }
        }
    }
    items
}

/// The items as an `items` table: benchmark, item_id, question, answer, n_digits, n_carries,
/// subtraction.
pub fn items_batch(items: &[ArithmeticItem]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("benchmark", DataType::Utf8, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("question", DataType::Utf8, false),
        Field::new("answer", DataType::Utf8, false),
        Field::new("n_digits", DataType::UInt32, false),
        Field::new("n_carries", DataType::UInt32, false),
        Field::new("subtraction", DataType::Boolean, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(
                items.iter().map(|_| BENCHMARK),
            )),
            Arc::new(StringArray::from_iter_values(
                items.iter().map(|i| i.item_id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                items.iter().map(|i| i.question.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                items.iter().map(|i| i.answer.as_str()),
            )),
            Arc::new(UInt32Array::from_iter_values(
                items.iter().map(|i| i.n_digits),
            )),
            Arc::new(UInt32Array::from_iter_values(
                items.iter().map(|i| i.n_carries),
            )),
            Arc::new(BooleanArray::from(
                items.iter().map(|i| i.subtraction).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("columns match the schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_carries_and_borrows_by_hand() {
        assert_eq!(carries(999, 1), 3);
        assert_eq!(carries(123, 456), 0);
        assert_eq!(carries(58, 67), 2);
        assert_eq!(borrows(1000, 1), 3);
        assert_eq!(borrows(987, 123), 0);
        assert_eq!(borrows(52, 38), 1);
    }

    #[test]
    fn items_are_seeded_correct_and_graded() {
        let items = arithmetic_items(20, 4, 7);
        assert_eq!(items.len(), 20 * 4 * 2);
        assert_eq!(items, arithmetic_items(20, 4, 7));
        assert_ne!(items, arithmetic_items(20, 4, 8));
        for item in &items {
            let body = item
                .question
                .trim_start_matches("Q: ")
                .trim_end_matches(" =");
            let parts: Vec<&str> = body.split(' ').collect();
            let (a, b): (i64, i64) = (parts[0].parse().unwrap(), parts[2].parse().unwrap());
            let want = if parts[1] == "+" { a + b } else { a - b };
            assert_eq!(item.answer, want.to_string(), "{}", item.question);
            assert!(want >= 0);
            assert_eq!(parts[0].len().max(parts[2].len()) as u32, item.n_digits);
        }
        // Longer operands carry more on average.
        let mean = |d: u32| {
            let xs: Vec<f64> = items
                .iter()
                .filter(|i| i.n_digits == d)
                .map(|i| i.n_carries as f64)
                .collect();
            xs.iter().sum::<f64>() / xs.len() as f64
        };
        assert!(mean(4) > mean(2) && mean(2) > mean(1));
    }
}
