//! The judgement of `cargo xtask perf`, apart from any measuring so that it can be tested: the
//! median of each build's samples, the ratio of the working tree to REF, whether that ratio is
//! a regression beyond the figure's margin in the figure's direction, and the exit status.

/// Which way a figure is better, and by how much it may get worse before the check fails.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// Rates: a regression is a ratio below 1 - margin (margin a fraction, 0.08 for 8 %).
    HigherIsBetter(f64),
    /// Instruction counts, wall time, memory: a regression is a ratio above 1 + margin.
    LowerIsBetter(f64),
    /// Shown beside the others, never a failure (the echo ceiling; rates from too few runs).
    Reported,
}

/// One figure: its samples from REF and from the working tree.
#[derive(Clone, Debug)]
pub struct Figure {
    pub name: String,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
    pub rule: Rule,
}

/// What the comparison of one figure found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// Better than REF by more than the margin.
    Improved,
    /// Within the margin either way.
    Within,
    /// Worse than REF by more than the margin: the check fails.
    Regressed,
    /// Not judged: the rule says so, or a ratio cannot be taken (no samples, REF is 0).
    Reported,
}

/// A judged figure, as printed.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub reference: Option<f64>,
    pub current: Option<f64>,
    /// Working tree over REF, of the medians.
    pub ratio: Option<f64>,
    pub outcome: Outcome,
}

/// The median of the samples (the mean of the middle two for an even count); None for none.
/// NaN samples are left out: a failed run is not a figure.
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// `current / reference`, 1 when both are 0 (nothing changed), None when only REF is 0 or
/// either is not a finite number.
pub fn ratio(reference: f64, current: f64) -> Option<f64> {
    if !reference.is_finite() || !current.is_finite() {
        return None;
    }
    if reference == 0.0 {
        return (current == 0.0).then_some(1.0);
    }
    Some(current / reference)
}

/// Judges a ratio (working tree over REF) by its rule. A change of exactly the margin is
/// still within it.
pub fn judge(ratio: Option<f64>, rule: Rule) -> Outcome {
    let Some(ratio) = ratio else {
        return Outcome::Reported;
    };
    // How much worse the working tree is, as a fraction of REF: negative when it is better.
    let (worse_by, margin) = match rule {
        Rule::HigherIsBetter(margin) => (1.0 - ratio, margin),
        Rule::LowerIsBetter(margin) => (ratio - 1.0, margin),
        Rule::Reported => return Outcome::Reported,
    };
    // Rounding: 0.92 is a change of exactly 8 %, but 1.0 - 0.92 is 0.08000000000000007.
    const EPSILON: f64 = 1e-9;
    if worse_by > margin + EPSILON {
        Outcome::Regressed
    } else if -worse_by > margin + EPSILON {
        Outcome::Improved
    } else {
        Outcome::Within
    }
}

impl Figure {
    pub fn row(&self) -> Row {
        let reference = median(&self.reference);
        let current = median(&self.current);
        let ratio = match (reference, current) {
            (Some(r), Some(c)) => ratio(r, c),
            _ => None,
        };
        Row {
            name: self.name.clone(),
            reference,
            current,
            ratio,
            outcome: judge(ratio, self.rule),
        }
    }
}

/// The rule for a rate measured `runs` times per build: judged with `margin` only from
/// `min_runs` runs on (fewer are too noisy to fail a check on), otherwise reported.
pub fn rate_rule(runs: usize, min_runs: usize, margin: f64) -> Rule {
    if runs >= min_runs {
        Rule::HigherIsBetter(margin)
    } else {
        Rule::Reported
    }
}

/// The process's exit status for these rows: 1 when any figure regressed, else 0.
pub fn exit_status(rows: &[Row]) -> u8 {
    u8::from(rows.iter().any(|r| r.outcome == Outcome::Regressed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(reference: &[f64], current: &[f64], rule: Rule) -> Row {
        Figure {
            name: "f".into(),
            reference: reference.to_vec(),
            current: current.to_vec(),
            rule,
        }
        .row()
    }

    #[test]
    fn median_of_odd_even_empty_and_nan() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0, 1.0, f64::NAN, 3.0]), Some(3.0));
        assert_eq!(median(&[f64::NAN]), None);
    }

    #[test]
    fn ratio_of_zero_and_non_finite() {
        assert_eq!(ratio(200.0, 100.0), Some(0.5));
        assert_eq!(ratio(0.0, 0.0), Some(1.0));
        assert_eq!(ratio(0.0, 5.0), None);
        assert_eq!(ratio(f64::INFINITY, 5.0), None);
        assert_eq!(ratio(5.0, f64::NAN), None);
    }

    #[test]
    fn rates_regress_when_lower_by_more_than_the_margin() {
        let rule = Rule::HigherIsBetter(0.08);
        // Medians 100 and 91: 9 % fewer answers per second.
        let r = figure(
            &[100.0, 99.0, 101.0, 100.0],
            &[91.0, 90.0, 92.0, 91.0],
            rule,
        );
        assert_eq!((r.reference, r.current), (Some(100.0), Some(91.0)));
        assert_eq!(r.outcome, Outcome::Regressed);
        // 8 % exactly is within; 7 % is within; a faster tree is an improvement.
        assert_eq!(judge(Some(0.92), rule), Outcome::Within);
        assert_eq!(judge(Some(0.93), rule), Outcome::Within);
        assert_eq!(judge(Some(1.07), rule), Outcome::Within);
        assert_eq!(judge(Some(1.09), rule), Outcome::Improved);
    }

    #[test]
    fn counts_and_times_regress_when_higher_by_more_than_the_margin() {
        let rule = Rule::LowerIsBetter(0.02);
        assert_eq!(judge(Some(1.021), rule), Outcome::Regressed);
        assert_eq!(judge(Some(1.02), rule), Outcome::Within);
        assert_eq!(judge(Some(0.99), rule), Outcome::Within);
        assert_eq!(judge(Some(0.97), rule), Outcome::Improved);
        // More instructions is worse, so the same ratio that improves a rate regresses here.
        let r = figure(&[1_000_000.0], &[1_030_000.0], rule);
        assert_eq!(r.outcome, Outcome::Regressed);
        assert_eq!(
            figure(&[100.0], &[103.0], Rule::HigherIsBetter(0.02)).outcome,
            Outcome::Improved
        );
    }

    #[test]
    fn one_outlier_does_not_move_the_median() {
        // One run of the tree collapsed (the machine was busy): the median holds.
        let r = figure(
            &[100.0, 100.0, 100.0, 100.0],
            &[100.0, 40.0, 99.0, 101.0],
            Rule::HigherIsBetter(0.08),
        );
        assert_eq!(r.current, Some(99.5));
        assert_eq!(r.outcome, Outcome::Within);
    }

    #[test]
    fn reported_figures_and_missing_samples_never_fail() {
        assert_eq!(
            figure(&[100.0], &[10.0], Rule::Reported).outcome,
            Outcome::Reported
        );
        let r = figure(&[], &[10.0], Rule::LowerIsBetter(0.02));
        assert_eq!((r.ratio, r.outcome), (None, Outcome::Reported));
        assert_eq!(
            figure(&[0.0], &[10.0], Rule::LowerIsBetter(0.02)).outcome,
            Outcome::Reported
        );
        assert_eq!(
            figure(&[0.0], &[0.0], Rule::LowerIsBetter(0.02)).outcome,
            Outcome::Within
        );
    }

    #[test]
    fn rates_are_judged_from_the_minimum_number_of_runs() {
        assert_eq!(rate_rule(4, 4, 0.08), Rule::HigherIsBetter(0.08));
        assert_eq!(rate_rule(8, 4, 0.08), Rule::HigherIsBetter(0.08));
        assert_eq!(rate_rule(2, 4, 0.08), Rule::Reported);
    }

    #[test]
    fn exit_status_is_1_on_any_regression() {
        let ok = figure(&[100.0], &[100.0], Rule::HigherIsBetter(0.08));
        let better = figure(&[100.0], &[50.0], Rule::LowerIsBetter(0.02));
        let reported = figure(&[100.0], &[1.0], Rule::Reported);
        let bad = figure(&[100.0], &[50.0], Rule::HigherIsBetter(0.08));
        assert_eq!(exit_status(&[]), 0);
        assert_eq!(
            exit_status(&[ok.clone(), better.clone(), reported.clone()]),
            0
        );
        assert_eq!(exit_status(&[ok, bad, better, reported]), 1);
    }
}
