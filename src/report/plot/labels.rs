//! Where the names go: greedy candidate-position label placement (Christensen, Marks & Shieber,
//! *An empirical study of algorithms for point-feature label placement*, ACM TOG 1995), as pure
//! geometry in canvas pixels, so that it is tested without drawing anything.

use super::*;

/// An axis-aligned box in canvas pixels, y pointing down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct BBox {
    /// Left.
    pub(super) x0: f64,
    /// Top.
    pub(super) y0: f64,
    /// Right.
    pub(super) x1: f64,
    /// Bottom.
    pub(super) y1: f64,
}

/// A segment between two pixel positions.
pub(super) type Segment = ((f64, f64), (f64, f64));

impl BBox {
    /// The box of `size` (width, height) centred on `c`.
    pub(super) fn centred(c: (f64, f64), size: (f64, f64)) -> BBox {
        BBox { x0: c.0 - size.0 / 2.0, y0: c.1 - size.1 / 2.0, x1: c.0 + size.0 / 2.0, y1: c.1 + size.1 / 2.0 }
    }

    /// The square of half side `r` around `c`.
    pub(super) fn around(c: (f64, f64), r: f64) -> BBox {
        BBox::centred(c, (2.0 * r, 2.0 * r))
    }

    /// Whether the two boxes share interior (touching edges do not count).
    pub(super) fn intersects(&self, o: &BBox) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    /// Whether `o` lies inside this box.
    pub(super) fn contains(&self, o: &BBox) -> bool {
        self.x0 <= o.x0 && o.x1 <= self.x1 && self.y0 <= o.y0 && o.y1 <= self.y1
    }

    /// Distance from `p` to the box (0 inside).
    pub(super) fn distance(&self, p: (f64, f64)) -> f64 {
        let q = self.nearest(p);
        (q.0 - p.0).hypot(q.1 - p.1)
    }

    /// The point of the box nearest to `p`.
    pub(super) fn nearest(&self, p: (f64, f64)) -> (f64, f64) {
        (p.0.clamp(self.x0, self.x1), p.1.clamp(self.y0, self.y1))
    }

    /// Whether the segment passes through the box's interior (Liang-Barsky clipping).
    pub(super) fn crossed_by(&self, s: Segment) -> bool {
        let ((ax, ay), (bx, by)) = s;
        let (dx, dy) = (bx - ax, by - ay);
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (p, q) in [(-dx, ax - self.x0), (dx, self.x1 - ax), (-dy, ay - self.y0), (dy, self.y1 - ay)] {
            if p == 0.0 {
                if q <= 0.0 {
                    return false;
                }
            } else {
                let t = q / p;
                if p < 0.0 {
                    t0 = t0.max(t);
                } else {
                    t1 = t1.min(t);
                }
            }
        }
        t1 - t0 > 1e-9
    }
}

/// Whether two segments cross (proper crossings only: a shared end point does not count).
pub(super) fn segments_cross(a: Segment, b: Segment) -> bool {
    let orient = |p: (f64, f64), q: (f64, f64), r: (f64, f64)| (q.0 - p.0) * (r.1 - p.1) - (q.1 - p.1) * (r.0 - p.0);
    let (d1, d2) = (orient(b.0, b.1, a.0), orient(b.0, b.1, a.1));
    let (d3, d4) = (orient(a.0, a.1, b.0), orient(a.0, a.1, b.1));
    d1 * d2 < 0.0 && d3 * d4 < 0.0
}

/// A point to label: its position, the radius of its marker and the size of its label's box.
#[derive(Debug, Clone, Copy)]
pub(super) struct Anchor {
    /// Centre of the marker, canvas pixels.
    pub(super) at: (f64, f64),
    /// Radius of the marker.
    pub(super) radius: f64,
    /// Width and height of the label's box.
    pub(super) size: (f64, f64),
}

/// Where a label went: its box and, when away from its point, the leader line to draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Placed {
    /// The label's box.
    pub(super) rect: BBox,
    /// From the marker's edge to the box.
    pub(super) leader: Option<Segment>,
}

/// The box of `size` in direction `dir` (a unit vector, x right, y up) from `at`, about `r` away:
/// its edge or corner nearest to `at` lies at `at + r * dir`, its centre further out along the
/// direction scaled to the unit square, so that a diagonal box touches with its corner.
pub(super) fn candidate(at: (f64, f64), size: (f64, f64), r: f64, dir: (f64, f64)) -> BBox {
    let m = dir.0.abs().max(dir.1.abs());
    let (sx, sy) = (dir.0 / m, -dir.1 / m);
    BBox::centred((at.0 + dir.0 * r + sx * size.0 / 2.0, at.1 - dir.1 * r + sy * size.1 / 2.0), size)
}

/// The candidate boxes of ring `ring` around `a`, in order of preference: ring 0 touches the
/// marker (right, left, the four corners, above, below); farther rings get leader lines and try
/// 48 directions, the nearest to horizontal first since labels are wide, right before left.
pub(super) fn ring(a: &Anchor, ring: usize) -> Vec<BBox> {
    let s = std::f64::consts::FRAC_1_SQRT_2;
    let near = [(1.0, 0.0), (-1.0, 0.0), (s, s), (s, -s), (-s, s), (-s, -s), (0.0, 1.0), (0.0, -1.0)];
    if ring == 0 {
        return near.iter().map(|&d| candidate(a.at, a.size, a.radius + GAP, d)).collect();
    }
    let r = a.radius + GAP + ring as f64 * RING_STEP;
    // 0, 180, 7.5, 172.5, -7.5, 187.5, 15, ..., 82.5, 262.5, 90, 270 degrees.
    let degrees = [0.0, 180.0]
        .into_iter()
        .chain((1..12).flat_map(|k| {
            let up = 7.5 * f64::from(k);
            [up, 180.0 - up, -up, 180.0 + up]
        }))
        .chain([90.0, 270.0]);
    degrees.map(|deg: f64| candidate(a.at, a.size, r, (deg.to_radians().cos(), deg.to_radians().sin()))).collect()
}

/// Everything placed so far, which later labels must keep clear of.
pub(super) struct Taken<'a> {
    pub(super) area: BBox,
    /// Every marker: centre and radius.
    pub(super) markers: Vec<((f64, f64), f64)>,
    pub(super) fixed: &'a [BBox],
    /// Lines drawn in the plot (reference lines, the front) that labels should not sit on.
    pub(super) lines: &'a [Segment],
    pub(super) labels: Vec<BBox>,
    pub(super) leaders: Vec<Segment>,
}

/// How strict a pass of [`place_labels`] is. The first passes keep a label well apart from other
/// points, so that it is read as its own point's, the very first also off the drawn lines, and
/// leader lines clear of other markers and leaders; later ones let leaders cross leaders and
/// labels come closer, and the very last lets a number's leader cross markers, rather than give a
/// label up. Labels never overlap labels or markers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Leniency {
    /// Least gap between a label and another point's marker.
    pub(super) clearance: f64,
    /// Without a leader: how much nearer the label must be to its own marker than to any other.
    pub(super) nearer: f64,
    /// Whether a label may sit on a drawn line.
    pub(super) on_lines: bool,
    pub(super) cross_leaders: bool,
    pub(super) cross_markers: bool,
}

pub(super) const OFF_LINES: Leniency =
    Leniency { clearance: APART, nearer: 6.0, on_lines: false, cross_leaders: false, cross_markers: false };
pub(super) const STRICT: Leniency = Leniency { on_lines: true, ..OFF_LINES };
pub(super) const CROSSING: Leniency = Leniency { cross_leaders: true, ..STRICT };
pub(super) const CLOSE: Leniency = Leniency { clearance: MARKER_CLEARANCE, nearer: 3.0, ..CROSSING };
pub(super) const DESPERATE: Leniency = Leniency { cross_markers: true, ..CLOSE };

impl Taken<'_> {
    /// Whether the label of anchor `own`, at `rect` with `leader`, is clear of everything.
    pub(super) fn free(&self, own: usize, rect: &BBox, leader: Option<Segment>, lenient: Leniency) -> bool {
        let gap = |&(c, r): &((f64, f64), f64)| rect.distance(c) - r;
        let own_gap = gap(&self.markers[own]);
        let least = if leader.is_some() { lenient.clearance } else { lenient.clearance.max(own_gap + lenient.nearer) };
        let apart = |(i, m): (usize, &((f64, f64), f64))| gap(m) >= if i == own { MARKER_CLEARANCE } else { least };
        let clear = |b: &BBox| !b.intersects(rect);
        if !self.area.contains(rect)
            || !self.markers.iter().enumerate().all(apart)
            || !self.fixed.iter().all(clear)
            || !self.labels.iter().all(clear)
            || self.leaders.iter().any(|&l| rect.crossed_by(l))
            || (!lenient.on_lines && self.lines.iter().any(|&l| rect.crossed_by(l)))
        {
            return false;
        }
        leader.is_none_or(|l| {
            self.labels.iter().chain(self.fixed).all(|b| !b.crossed_by(l))
                && (lenient.cross_markers
                    || self
                        .markers
                        .iter()
                        .enumerate()
                        .all(|(i, &(c, r))| i == own || !BBox::around(c, r + MARKER_CLEARANCE).crossed_by(l)))
                && (lenient.cross_leaders || self.leaders.iter().all(|&o| !segments_cross(o, l)))
        })
    }

    /// The free boxes for anchor `own` (up to `cap` of them) among `rings`, in order of preference.
    pub(super) fn options(
        &self,
        own: usize,
        a: &Anchor,
        rings: std::ops::Range<usize>,
        lenient: Leniency,
        cap: usize,
    ) -> Vec<Placed> {
        rings
            .flat_map(|k| ring(a, k).into_iter().map(move |rect| Placed { rect, leader: leader(a, &rect, k) }))
            .filter(|p| self.free(own, &p.rect, p.leader, lenient))
            .take(cap)
            .collect()
    }

    /// Places the labels of `anchors` (`(index into the markers, anchor)`) under `lenient`, most
    /// constrained first: the label with the fewest free boxes left (`priority` before all) takes
    /// its most preferred, then the next is chosen again. Fills `out`.
    pub(super) fn pass(
        &mut self,
        anchors: &[(usize, Anchor)],
        rings: std::ops::Range<usize>,
        lenient: Leniency,
        priority: Option<usize>,
        out: &mut [Option<Placed>],
    ) {
        loop {
            let mut best: Option<((bool, usize, usize), usize, Placed)> = None;
            for (rank, (own, a)) in anchors.iter().enumerate() {
                if out[rank].is_some() {
                    continue;
                }
                let free = self.options(*own, a, rings.clone(), lenient, CHOICES);
                let Some(&first) = free.first() else { continue };
                let key = (Some(rank) != priority, free.len(), rank);
                if best.as_ref().is_none_or(|b| key < b.0) {
                    best = Some((key, rank, first));
                }
            }
            let Some((_, rank, p)) = best else { return };
            self.labels.push(p.rect);
            self.leaders.extend(p.leader);
            out[rank] = Some(p);
        }
    }
}

/// The leader from `a`'s marker to the nearest point of `rect`, or none when the box touches the
/// marker's ring 0.
pub(super) fn leader(a: &Anchor, rect: &BBox, ring: usize) -> Option<Segment> {
    if ring == 0 {
        return None;
    }
    let to = rect.nearest(a.at);
    let (dx, dy) = (to.0 - a.at.0, to.1 - a.at.1);
    let d = dx.hypot(dy).max(1e-9);
    Some(((a.at.0 + dx / d * (a.radius + 1.0), a.at.1 + dy / d * (a.radius + 1.0)), to))
}

/// What a point is labelled with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Label {
    /// Its name, in this box.
    Name(Placed),
    /// A number (from 1) in this box, the name listed in the legend.
    Number(usize, Placed),
}

impl Label {
    /// Where the label went.
    pub(super) fn placed(&self) -> &Placed {
        match self {
            Label::Name(p) | Label::Number(_, p) => p,
        }
    }
}

/// Labels every anchor inside `area`, clear of the `fixed` boxes, of every marker and of each
/// other, and where room allows off the `lines` drawn in the plot.
///
/// Greedy, in passes of growing [`Leniency`]: first the adjacent ring only, so that no far label
/// takes the place next to a point that could have had it; then the farther rings with leaders;
/// then closer to other points. Within a pass `first` (the baseline) goes first, then always the
/// label with the fewest free boxes left (ties: the most crowded point, with most neighbours
/// within 150 px), which takes its most preferred free box. A name with no free box after all
/// passes becomes a number (1, 2, ... in anchor order), placed the same way; a number with no
/// free box either goes right of its point regardless. Deterministic.
pub(super) fn place_labels(
    anchors: &[Anchor],
    area: BBox,
    fixed: &[BBox],
    lines: &[Segment],
    first: Option<usize>,
) -> Vec<Label> {
    let crowd = |i: usize| {
        let a = anchors[i].at;
        anchors.iter().filter(|b| (b.at.0 - a.0).hypot(b.at.1 - a.1) < 150.0).count()
    };
    let mut order: Vec<usize> = (0..anchors.len()).collect();
    order.sort_by_key(|&i| (Some(i) != first, std::cmp::Reverse(crowd(i)), i));
    let mut taken = Taken {
        area,
        markers: anchors.iter().map(|a| (a.at, a.radius)).collect(),
        fixed,
        lines,
        labels: Vec::new(),
        leaders: Vec::new(),
    };
    let far = 1..RINGS + 1;
    let passes =
        [(0..1, OFF_LINES), (0..1, STRICT), (far.clone(), STRICT), (far.clone(), CROSSING), (0..RINGS + 1, CLOSE)];
    let ordered: Vec<(usize, Anchor)> = order.iter().map(|&i| (i, anchors[i])).collect();
    let priority = first.and_then(|f| order.iter().position(|&i| i == f));
    let mut by_rank: Vec<Option<Placed>> = vec![None; anchors.len()];
    for (rings, lenient) in passes.iter().cloned() {
        taken.pass(&ordered, rings, lenient, priority, &mut by_rank);
    }
    let mut names: Vec<Option<Placed>> = vec![None; anchors.len()];
    for (&i, p) in order.iter().zip(by_rank) {
        names[i] = p;
    }
    let unnamed: Vec<usize> = (0..anchors.len()).filter(|&i| names[i].is_none()).collect();
    let tags: Vec<(usize, Anchor)> = (1..=unnamed.len())
        .zip(&unnamed)
        .map(|(n, &i)| (i, Anchor { size: label_size(&n.to_string(), LABEL_PX, true), ..anchors[i] }))
        .collect();
    let mut numbers: Vec<Option<Placed>> = vec![None; tags.len()];
    for (rings, lenient) in passes.into_iter().chain([(far, DESPERATE)]) {
        taken.pass(&tags, rings, lenient, None, &mut numbers);
    }
    let mut labels: Vec<Label> = names
        .iter()
        .zip(anchors)
        .map(|(p, a)| Label::Name(p.unwrap_or(Placed { rect: ring(a, 0)[0], leader: None })))
        .collect();
    for (k, (&i, p)) in unnamed.iter().zip(numbers).enumerate() {
        labels[i] = Label::Number(k + 1, p.unwrap_or(Placed { rect: ring(&tags[k].1, 0)[0], leader: None }));
    }
    labels
}

/// The first of `candidates` inside `area`, clear of the `obstacles` and not crossed by `lines`.
pub(super) fn first_free(candidates: &[BBox], area: &BBox, obstacles: &[BBox], lines: &[Segment]) -> Option<BBox> {
    candidates
        .iter()
        .find(|c| {
            area.contains(c) && obstacles.iter().all(|o| !o.intersects(c)) && lines.iter().all(|&l| !c.crossed_by(l))
        })
        .copied()
}

/// The box of a label of `text` at `px` pixels, padding included.
pub(super) fn label_size(text: &str, px: f64, bold: bool) -> (f64, f64) {
    let em = if bold { BOLD_CHAR_EM } else { CHAR_EM };
    (text.chars().count() as f64 * em * px + 2.0 * LABEL_PAD, LINE_EM * px + 2.0 * LABEL_PAD)
}
