//! Reading Prometheus text exposition (the gateway's `/metrics`).

/// Sums the samples of metric `name` whose labels include every `(label, value)` pair.
/// Returns `None` when no sample matches.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut total = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(rest) => match rest.rsplit_once('}') {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None if rest.starts_with(' ') => ("", rest),
            None => continue, // a longer metric name sharing the prefix
        };
        let matches = labels
            .iter()
            .all(|(label, value)| label_text.contains(&format!("{label}=\"{value}\"")));
        if !matches {
            continue;
        }
        if let Some(v) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            total = Some(total.unwrap_or(0.0) + v);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::sum;

    #[test]
    fn sums_matching_samples_only() {
        let text = "# TYPE istio_requests_total counter\n\
            istio_requests_total{destination_service=\"a\",response_code=\"200\"} 3\n\
            istio_requests_total{destination_service=\"a\",response_code=\"503\"} 2\n\
            istio_requests_total{destination_service=\"b\",response_code=\"200\"} 7\n\
            istio_requests_total_other{destination_service=\"a\"} 100\n";
        assert_eq!(
            sum(
                text,
                "istio_requests_total",
                &[("destination_service", "a")]
            ),
            Some(5.0)
        );
        assert_eq!(
            sum(text, "istio_requests_total", &[("response_code", "200")]),
            Some(10.0)
        );
        assert_eq!(
            sum(
                text,
                "istio_requests_total",
                &[("destination_service", "c")]
            ),
            None
        );
    }
}
