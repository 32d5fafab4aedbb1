#include <strata/report/heatmap.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <tuple>
#include <utility>

#include <strata/core/error.h>

#include "font.h"

namespace strata {
namespace {

constexpr Rgb kNanGrey{128, 128, 128};
constexpr Rgb kInk{25, 25, 25};          // title and labels
constexpr Rgb kTickGrey{120, 120, 120};  // colour-bar ticks and stagger ticks
constexpr Rgb kGridLine{200, 200, 200};  // visible between white (diverging mid) cells too
constexpr int64_t kMaxCells = int64_t{1} << 16;
constexpr int64_t kMaxCellSide = int64_t{1} << 14;
constexpr size_t kMaxVerticalChars = 40;

// matplotlib's viridis sampled at 0, 0.1, ..., 1.
constexpr Rgb kViridis[] = {{68, 1, 84},    {72, 36, 117},  {65, 68, 135},  {53, 95, 141},
                            {42, 120, 142}, {33, 145, 140}, {34, 168, 132}, {68, 191, 112},
                            {122, 209, 81}, {189, 223, 38}, {253, 231, 37}};
// ColorBrewer RdBu's ends and quarter points around a pure white middle.
constexpr Rgb kDiverging[] = {
    {33, 102, 172}, {146, 197, 222}, {255, 255, 255}, {244, 165, 130}, {178, 24, 43}};

template <size_t N>
Rgb interpolate(const Rgb (&table)[N], double t) {
  const double pos = t * static_cast<double>(N - 1);
  const size_t i = std::min(static_cast<size_t>(pos), N - 2);
  const double f = pos - static_cast<double>(i);
  auto mix = [f](uint8_t a, uint8_t b) {
    return static_cast<uint8_t>(std::lround(a + (static_cast<double>(b) - a) * f));
  };
  return Rgb{mix(table[i].r, table[i + 1].r), mix(table[i].g, table[i + 1].g),
             mix(table[i].b, table[i + 1].b)};
}

// Black or white, whichever reads better on `fill` (Rec. 709 luma).
Rgb text_color_on(Rgb fill) {
  const double luma = 0.2126 * fill.r + 0.7152 * fill.g + 0.0722 * fill.b;
  return luma > 140 ? Rgb{0, 0, 0} : Rgb{255, 255, 255};
}

void check_heatmap(const Heatmap& h, const char* caller) {
  STRATA_CHECK(h.rows >= 1 && h.cols >= 1 && h.rows <= kMaxCells && h.cols <= kMaxCells, caller,
               ": ", h.rows, " x ", h.cols, " cells; each side must be in [1, ", kMaxCells, "]");
  const auto n = static_cast<size_t>(h.rows * h.cols);
  STRATA_CHECK(h.values.size() == n, caller, ": ", h.values.size(), " values for ", h.rows, " x ",
               h.cols, " cells");
  STRATA_CHECK(h.cell_text.empty() || h.cell_text.size() == n, caller, ": ", h.cell_text.size(),
               " cell texts for ", h.rows, " x ", h.cols, " cells");
  STRATA_CHECK(h.row_labels.empty() || h.row_labels.size() == static_cast<size_t>(h.rows), caller,
               ": ", h.row_labels.size(), " row labels for ", h.rows, " rows");
  STRATA_CHECK(h.col_labels.empty() || h.col_labels.size() == static_cast<size_t>(h.cols), caller,
               ": ", h.col_labels.size(), " column labels for ", h.cols, " columns");
  STRATA_CHECK(h.text_scale >= 1 && h.text_scale <= 16, caller, ": text_scale ", h.text_scale,
               " is not in [1, 16]");
  STRATA_CHECK(h.min_cell_width >= 0 && h.min_cell_width <= kMaxCellSide, caller,
               ": min_cell_width ", h.min_cell_width, " is not in [0, ", kMaxCellSide, "]");
  STRATA_CHECK(h.cell_height >= 0 && h.cell_height <= kMaxCellSide, caller, ": cell_height ",
               h.cell_height, " is not in [0, ", kMaxCellSide, "]");
  STRATA_CHECK(std::isnan(h.vmin) || std::isfinite(h.vmin), caller, ": vmin ", h.vmin,
               " is infinite");
  STRATA_CHECK(std::isnan(h.vmax) || std::isfinite(h.vmax), caller, ": vmax ", h.vmax,
               " is infinite");
  STRATA_CHECK(std::isnan(h.vmin) || std::isnan(h.vmax) || h.vmin <= h.vmax, caller, ": vmin ",
               h.vmin, " is above vmax ", h.vmax);
}

// The colour range: the given vmin / vmax, else the finite data's min / max (0..1 if none).
std::pair<double, double> value_range(const Heatmap& h) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : h.values)
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (lo > hi) lo = 0, hi = 1;
  if (!std::isnan(h.vmin)) lo = h.vmin;
  if (!std::isnan(h.vmax)) hi = h.vmax;
  if (lo > hi) {
    // Only one end was given, beyond all the data: a degenerate range at that end.
    if (!std::isnan(h.vmin))
      hi = lo;
    else
      lo = hi;
  }
  return {lo, hi};
}

double normalize(double v, double lo, double hi) {
  if (std::isnan(v)) return v;
  if (hi > lo) return (v - lo) / (hi - lo);
  return v < lo ? 0.0 : v > hi ? 1.0 : 0.5;  // all equal: no division by zero, mid colour
}

// What a label or cell text shows: font characters without the leading and trailing spaces, so
// that token texts like " upon" are centred on their ink.
std::string visible(const std::string& text) {
  const std::string chars = detail::font_chars(text);
  const size_t first = chars.find_first_not_of(' ');
  if (first == std::string::npos) return "";
  return chars.substr(first, chars.find_last_not_of(' ') - first + 1);
}

std::string format_tick(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// `chars` (already font characters) cut to at most `max_w` pixels, ending in ".." when cut.
std::string elide(const std::string& chars, int64_t max_w, int scale) {
  if (Image::text_width(chars, scale) <= max_w) return chars;
  const int64_t fit =
      (max_w / scale + (detail::kGlyphAdvance - detail::kGlyphWidth)) / detail::kGlyphAdvance;
  if (fit <= 0) return "";
  if (fit >= 3) return chars.substr(0, static_cast<size_t>(fit - 2)) + "..";
  return chars.substr(0, static_cast<size_t>(fit));
}

struct Label {
  int64_t x, y;
  std::string text;
};
struct Line {
  int64_t x0, y0, x1, y1;
};

// Everything render() draws except the cells, in final image coordinates.
struct Plan {
  HeatmapLayout layout;
  std::vector<Label> labels;           // drawn in kInk
  std::vector<Label> vertical_labels;  // drawn in kInk reading upwards; (x, y) is the top-left
  std::vector<Line> ticks;             // drawn in kTickGrey
  Label title;
};

Plan make_plan(const Heatmap& h, const char* caller) {
  check_heatmap(h, caller);
  const int s = h.text_scale;
  const int64_t th = Image::text_height(s);
  const int64_t adv = int64_t{detail::kGlyphAdvance} * s;
  const int64_t margin = 8 * s, gap = 4 * s, pad_x = 3 * s, pad_y = 3 * s, line_h = th + 2 * s;

  Plan plan;
  HeatmapLayout& L = plan.layout;
  L.rows = h.rows;
  L.cols = h.cols;
  std::tie(L.vmin, L.vmax) = value_range(h);

  int64_t text_w = 0;
  for (const auto& t : h.cell_text) text_w = std::max(text_w, Image::text_width(visible(t), s));
  L.cell_width = std::max({h.min_cell_width, text_w + 2 * pad_x, th + 2 * pad_y});
  L.cell_height = h.cell_height > 0 ? h.cell_height : th + 2 * pad_y;
  const int64_t pitch_x = L.cell_width + 1, pitch_y = L.cell_height + 1;

  // Laid out around the grid's top-left corner at (0, 0); shifted into place at the end.
  L.grid = Rect{0, 0, h.cols * pitch_x + 1, h.rows * pitch_y + 1};
  int64_t min_x = 0, min_y = 0, max_x = L.grid.w, max_y = L.grid.h;
  auto add_label = [&](int64_t x, int64_t y, std::string text) {
    if (text.empty()) return;
    min_x = std::min(min_x, x);
    min_y = std::min(min_y, y);
    max_x = std::max(max_x, x + Image::text_width(text, s));
    max_y = std::max(max_y, y + th);
    plan.labels.push_back(Label{x, y, std::move(text)});
  };

  // Row labels, right-aligned against the grid.
  for (size_t r = 0; r < h.row_labels.size(); ++r) {
    std::string text = visible(h.row_labels[r]);
    const int64_t y = 1 + static_cast<int64_t>(r) * pitch_y + (L.cell_height - th) / 2;
    const int64_t x = -gap - Image::text_width(text, s);
    add_label(x, y, std::move(text));
  }

  // Column labels centred over their columns: on one line when each fits its cell; else
  // alternating between two lines when each fits in about two cells; else turned to read upwards
  // (cut with ".." beyond kMaxVerticalChars).
  std::vector<std::string> col_text;
  int64_t widest = 0;
  for (const auto& label : h.col_labels) {
    col_text.push_back(visible(label));
    widest = std::max(widest, Image::text_width(col_text.back(), s));
  }
  const bool flat = widest <= L.cell_width - 2 * s;
  const bool stagger = !flat && widest <= 2 * pitch_x - 2 * adv;
  const int64_t low_y = -gap - th;
  int64_t labels_right = L.grid.w;  // right end of the column labels
  for (size_t c = 0; c < col_text.size(); ++c) {
    std::string text = col_text[c];
    if (text.empty()) continue;
    const int64_t centre = 1 + static_cast<int64_t>(c) * pitch_x + L.cell_width / 2;
    if (!flat && !stagger) {
      text = elide(text, Image::text_width(std::string(kMaxVerticalChars, 'x'), s), s);
      const int64_t len = Image::text_width(text, s);
      const int64_t x = centre - th / 2, y = -gap - len;
      min_y = std::min(min_y, y);
      plan.vertical_labels.push_back(Label{x, y, std::move(text)});
      continue;
    }
    const int64_t x = centre - Image::text_width(text, s) / 2;
    const bool upper = stagger && c % 2 == 0;
    const int64_t y = upper ? low_y - line_h : low_y;
    if (upper) plan.ticks.push_back(Line{centre, y + th + 1, centre, -2});
    labels_right = std::max(labels_right, x + Image::text_width(text, s));
    add_label(x, y, std::move(text));
  }

  // Colour bar right of the grid and of the column labels (its label shares their lines), at
  // least tall enough for three tick labels.
  const std::string bar_label = detail::font_chars(h.colorbar_label);
  const int64_t bar_x = std::max(L.grid.w + 10 * s, labels_right + 2 * adv);
  L.colorbar = Rect{bar_x, 0, 12 * s, std::max(L.grid.h, 3 * th + 6 * s)};
  const Rect& bar = L.colorbar;
  max_x = std::max(max_x, bar.x + bar.w + 1);
  max_y = std::max(max_y, bar.h + 1);
  // Ticks short and apart from their labels, so that "-1" is never read for "1".
  const int64_t tick_x0 = bar.x + bar.w + 1, tick_x1 = tick_x0 + 3 * s;
  auto add_tick = [&](int64_t y, double v) {
    plan.ticks.push_back(Line{tick_x0, y, tick_x1 - 1, y});
    add_label(tick_x1 + 4 * s, y - th / 2, format_tick(v));
  };
  add_tick(0, L.vmax);
  add_tick(bar.h - 1, L.vmin);
  if (bar.h >= 5 * th && L.vmax > L.vmin) add_tick((bar.h - 1) / 2, (L.vmin + L.vmax) / 2);
  add_label(bar.x, std::min(low_y, -th / 2 - gap - th), bar_label);

  // Shift so the leftmost / topmost things sit on the margins, with the title above them all.
  plan.title = Label{margin, margin, detail::font_chars(h.title)};
  const int64_t top = plan.title.text.empty() ? margin : margin + th + 3 * gap;
  const int64_t dx = margin - min_x, dy = top - min_y;
  for (auto& l : plan.labels) l.x += dx, l.y += dy;
  for (auto& l : plan.vertical_labels) l.x += dx, l.y += dy;
  for (auto& t : plan.ticks) t.x0 += dx, t.x1 += dx, t.y0 += dy, t.y1 += dy;
  L.grid.x += dx, L.grid.y += dy;
  L.colorbar.x += dx, L.colorbar.y += dy;
  L.width = std::max(max_x + dx, margin + Image::text_width(plan.title.text, s)) + margin;
  L.height = max_y + dy + margin;
  return plan;
}

}  // namespace

Rgb colormap(Colormap map, double t) {
  if (std::isnan(t)) return kNanGrey;
  t = std::clamp(t, 0.0, 1.0);
  switch (map) {
    case Colormap::Viridis:
      return interpolate(kViridis, t);
    case Colormap::Diverging:
      return interpolate(kDiverging, t);
  }
  throw Error(str_cat("colormap: unknown map ", static_cast<int>(map)));
}

Rect HeatmapLayout::cell(int64_t row, int64_t col) const {
  STRATA_CHECK(row >= 0 && row < rows && col >= 0 && col < cols, "HeatmapLayout::cell: (", row,
               ", ", col, ") is outside the ", rows, " x ", cols, " grid");
  return Rect{grid.x + 1 + col * (cell_width + 1), grid.y + 1 + row * (cell_height + 1), cell_width,
              cell_height};
}

Heatmap::Heatmap(std::vector<double> values_in, int64_t rows_in, int64_t cols_in)
    : values(std::move(values_in)), rows(rows_in), cols(cols_in) {
  STRATA_CHECK(rows >= 1 && cols >= 1 && rows <= kMaxCells && cols <= kMaxCells, "Heatmap: ", rows,
               " x ", cols, " cells; each side must be in [1, ", kMaxCells, "]");
  STRATA_CHECK(values.size() == static_cast<size_t>(rows * cols), "Heatmap: ", values.size(),
               " values for ", rows, " x ", cols, " cells");
}

HeatmapLayout Heatmap::layout() const { return make_plan(*this, "Heatmap::layout").layout; }

Rgb Heatmap::color_of(double value) const {
  const auto [lo, hi] = value_range(*this);
  return colormap(map, normalize(value, lo, hi));
}

Image Heatmap::render() const {
  const Plan plan = make_plan(*this, "Heatmap::render");
  const HeatmapLayout& L = plan.layout;
  const int s = text_scale;
  Image img(L.width, L.height, Rgb{255, 255, 255});

  img.fill_rect(L.grid.x, L.grid.y, L.grid.w, L.grid.h, kGridLine);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const Rect cell = L.cell(r, c);
      const auto i = static_cast<size_t>(r * cols + c);
      const Rgb fill = colormap(map, normalize(values[i], L.vmin, L.vmax));
      img.fill_rect(cell.x, cell.y, cell.w, cell.h, fill);
      if (cell_text.empty()) continue;
      const std::string text = visible(cell_text[i]);
      if (text.empty()) continue;
      const int64_t tw = Image::text_width(text, s);
      img.draw_text(cell.x + (cell.w - tw) / 2, cell.y + (cell.h - Image::text_height(s)) / 2, text,
                    text_color_on(fill), s);
    }

  const Rect& bar = L.colorbar;
  img.fill_rect(bar.x - 1, bar.y - 1, bar.w + 2, bar.h + 2, kTickGrey);
  for (int64_t y = 0; y < bar.h; ++y) {
    const double t = bar.h > 1 ? 1.0 - static_cast<double>(y) / static_cast<double>(bar.h - 1) : 1;
    img.fill_rect(bar.x, bar.y + y, bar.w, 1, colormap(map, t));
  }

  for (const auto& t : plan.ticks) img.draw_line(t.x0, t.y0, t.x1, t.y1, kTickGrey);
  for (const auto& l : plan.labels) img.draw_text(l.x, l.y, l.text, kInk, s);
  for (const auto& l : plan.vertical_labels) img.draw_text_upwards(l.x, l.y, l.text, kInk, s);
  img.draw_text(plan.title.x, plan.title.y, plan.title.text, kInk, s);
  return img;
}

}  // namespace strata
