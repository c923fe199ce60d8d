use super::*;

#[test]
fn percentiles_are_placed_by_their_nines() {
    assert_eq!(nines(0.0), 0.0);
    assert!((nines(90.0) - 1.0).abs() < 1e-9);
    assert!((nines(99.9) - 3.0).abs() < 1e-9);
    assert_eq!(nines(100.0), MAX_NINES);
    assert_eq!(nines_label(0), "0%");
    assert_eq!(nines_label(2), "99%");
    assert_eq!(nines_label(4), "99.99%");
}

#[test]
fn linear_ticks_cover_the_data_at_a_round_step() {
    let (max, ticks) = linear_ticks(9.3);
    assert_eq!(max, 10.0);
    let labels: Vec<&str> = ticks.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(labels, ["0", "2", "4", "6", "8", "10"]);
    let (max, ticks) = linear_ticks(0.042);
    assert!((max - 0.05).abs() < 1e-12, "{max}");
    assert_eq!(ticks[1].1, "0.01");
    assert_eq!(linear_ticks(4.002).0, 4.0);
    assert_eq!(linear_ticks(4.2).0, 5.0);
    // No data still gives an axis.
    assert_eq!(linear_ticks(0.0).0, 1.0);
}

#[test]
fn a_series_becomes_polylines_inside_the_plot_area() {
    let plot = Plot {
        id: "p".into(),
        title: "t".into(),
        x_label: "x".into(),
        y_label: "y".into(),
        x_scale: XScale::Linear,
        series: vec![Series::new(
            "a<b",
            vec![
                (0.0, 0.0),
                (5.0, 10.0),
                (f64::NAN, 1.0),
                (3.0, f64::NAN),
                (4.0, 2.0),
            ],
        )],
    };
    let svg = plot.render();
    assert!(
        svg.contains(r#"data-series="a&lt;b" data-points="2""#),
        "{svg}"
    );
    // (0, 0) is the bottom-left corner, (5, 10) the top-right one.
    let corners = format!(
        r#"points="{LEFT:.1},{:.1} {:.1},{TOP:.1}""#,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT
    );
    assert!(svg.contains(&corners), "{svg}");
    // After the gap (x = 3 has no y), x = 4 stands alone: a line of one point, and a dot.
    assert!(
        svg.contains(r#"data-points="1""#) && svg.contains("<circle"),
        "{svg}"
    );
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert!(!svg.contains("no data"));
}

#[test]
fn the_percentile_axis_reaches_the_deepest_percentile() {
    let plot = Plot {
        id: "p".into(),
        title: "t".into(),
        x_label: "x".into(),
        y_label: "y".into(),
        x_scale: XScale::Percentile,
        series: vec![Series::new("run", vec![(50.0, 1.0), (99.95, 3.0)])],
    };
    let svg = plot.render();
    assert!(svg.contains(">99.99%</text>"), "{svg}");
    assert!(!svg.contains(">99.999%</text>"), "{svg}");
    let empty = Plot {
        series: vec![Series::new("run", vec![])],
        ..plot
    };
    let svg = empty.render();
    assert!(
        svg.contains("no data") && svg.contains(">99%</text>"),
        "{svg}"
    );
}
