#include <strata/report/heatmap.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <strata/core/error.h>

namespace strata {
namespace {

constexpr Rgb kWhite{255, 255, 255};
constexpr Rgb kGrey{128, 128, 128};

bool same(Rgb a, Rgb b) { return a.r == b.r && a.g == b.g && a.b == b.b; }

::testing::AssertionResult same_rgb(Rgb a, Rgb b) {
  if (same(a, b)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "(" << int(a.r) << "," << int(a.g) << "," << int(a.b) << ") != (" << int(b.r) << ","
         << int(b.g) << "," << int(b.b) << ")";
}

Rgb centre_of(const Image& img, const Rect& r) { return img.at(r.x + r.w / 2, r.y + r.h / 2); }

TEST(Colormap, ViridisRunsFromDarkPurpleToYellow) {
  const Rgb lo = colormap(Colormap::Viridis, 0.0), hi = colormap(Colormap::Viridis, 1.0);
  EXPECT_TRUE(same_rgb(lo, Rgb{68, 1, 84}));
  EXPECT_TRUE(same_rgb(hi, Rgb{253, 231, 37}));
  EXPECT_LT(lo.g, 20);
  EXPECT_GT(lo.b, lo.g);
  EXPECT_GT(hi.r, 200);
  EXPECT_GT(hi.g, 200);
  EXPECT_LT(hi.b, 80);
  // Lightness grows along the map.
  double last = -1;
  for (int i = 0; i <= 20; ++i) {
    const Rgb c = colormap(Colormap::Viridis, i / 20.0);
    const double luma = 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b;
    EXPECT_GT(luma, last) << i;
    last = luma;
  }
}

TEST(Colormap, DivergingIsBlueWhiteRed) {
  EXPECT_TRUE(same_rgb(colormap(Colormap::Diverging, 0.5), kWhite));
  const Rgb lo = colormap(Colormap::Diverging, 0.0), hi = colormap(Colormap::Diverging, 1.0);
  EXPECT_GT(lo.b, lo.r + 100);
  EXPECT_GT(hi.r, hi.b + 100);
}

TEST(Colormap, ClampsAndGreysOutNan) {
  for (auto map : {Colormap::Viridis, Colormap::Diverging}) {
    EXPECT_TRUE(same_rgb(colormap(map, -3), colormap(map, 0)));
    EXPECT_TRUE(same_rgb(colormap(map, 7), colormap(map, 1)));
    EXPECT_TRUE(same_rgb(colormap(map, NAN), kGrey));
  }
}

Heatmap sample_3x4() {
  Heatmap h({0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 0.25}, 3, 4);
  h.cell_text = {"a", "bb", "", "dddd", "e", "f", "g", "h", "i", "", "k", "l"};
  h.row_labels = {"first", "second", "third row"};
  h.col_labels = {"A", "B", "C", "D"};
  h.title = "a title";
  h.colorbar_label = "p";
  return h;
}

TEST(Heatmap, EmptyCellCentreHasItsColour) {
  Heatmap h = sample_3x4();
  h.vmin = 0;
  h.vmax = 1;
  const Image img = h.render();
  const HeatmapLayout L = h.layout();
  EXPECT_EQ(img.width(), L.width);
  EXPECT_EQ(img.height(), L.height);
  EXPECT_TRUE(same_rgb(centre_of(img, L.cell(0, 2)), colormap(Colormap::Viridis, 0.2)));
  EXPECT_TRUE(same_rgb(centre_of(img, L.cell(2, 1)), colormap(Colormap::Viridis, 0.9)));
  EXPECT_TRUE(same_rgb(h.color_of(0.9), colormap(Colormap::Viridis, 0.9)));
}

TEST(Heatmap, EveryCellIsFilledWithItsColour) {
  Heatmap h = sample_3x4();
  h.map = Colormap::Diverging;
  h.vmin = -1;
  h.vmax = 3;
  const Image img = h.render();
  const HeatmapLayout L = h.layout();
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 4; ++c) {
      const Rect cell = L.cell(r, c);
      const double v = h.values[static_cast<size_t>(r * 4 + c)];
      const Rgb want = colormap(Colormap::Diverging, (v + 1) / 4);
      // Corners are padding, never text.
      EXPECT_TRUE(same_rgb(img.at(cell.x, cell.y), want)) << r << "," << c;
      EXPECT_TRUE(same_rgb(img.at(cell.x + cell.w - 1, cell.y + cell.h - 1), want));
      // Just outside: grid lines.
      EXPECT_FALSE(same(img.at(cell.x - 1, cell.y), want));
      EXPECT_FALSE(same(img.at(cell.x, cell.y - 1), want));
    }
}

TEST(Heatmap, DataRangeWhenVminVmaxAreNan) {
  Heatmap h({2.0, NAN, 4.0, 3.0}, 2, 2);
  const HeatmapLayout L = h.layout();
  EXPECT_EQ(L.vmin, 2.0);
  EXPECT_EQ(L.vmax, 4.0);
  const Image img = h.render();
  EXPECT_TRUE(same_rgb(centre_of(img, L.cell(0, 0)), colormap(Colormap::Viridis, 0.0)));
  EXPECT_TRUE(same_rgb(centre_of(img, L.cell(1, 0)), colormap(Colormap::Viridis, 1.0)));
  EXPECT_TRUE(same_rgb(centre_of(img, L.cell(1, 1)), colormap(Colormap::Viridis, 0.5)));
  EXPECT_TRUE(same_rgb(centre_of(img, L.cell(0, 1)), kGrey));

  h.vmax = 10;  // one end given, the other from the data
  EXPECT_EQ(h.layout().vmin, 2.0);
  EXPECT_EQ(h.layout().vmax, 10.0);
}

TEST(Heatmap, EqualValuesDoNotDivideByZero) {
  Heatmap h({5.0, 5.0, NAN}, 1, 3);
  const Image img = h.render();
  const HeatmapLayout L = h.layout();
  EXPECT_TRUE(same_rgb(centre_of(img, L.cell(0, 0)), colormap(Colormap::Viridis, 0.5)));
  EXPECT_TRUE(same_rgb(centre_of(img, L.cell(0, 2)), kGrey));

  Heatmap all_nan({NAN, NAN}, 1, 2);
  const Image img2 = all_nan.render();
  EXPECT_TRUE(same_rgb(centre_of(img2, all_nan.layout().cell(0, 1)), kGrey));
}

TEST(Heatmap, CellsWidenToTheirText) {
  Heatmap h = sample_3x4();
  const HeatmapLayout L = h.layout();
  EXPECT_GE(L.cell_width, Image::text_width("dddd") + 2);
  EXPECT_EQ(L.cell(0, 1).x - L.cell(0, 0).x, L.cell_width + 1);
  h.min_cell_width = 90;
  h.cell_height = 40;
  const HeatmapLayout wide = h.layout();
  EXPECT_EQ(wide.cell_width, 90);
  EXPECT_EQ(wide.cell_height, 40);
  h.text_scale = 2;
  h.min_cell_width = 0;
  h.cell_height = 0;
  EXPECT_GE(h.layout().cell_width, Image::text_width("dddd", 2) + 4);
  EXPECT_GE(h.layout().cell_height, Image::text_height(2));
}

TEST(Heatmap, CellTextContrastsWithItsFill) {
  Heatmap h({0.0, 1.0}, 1, 2);
  h.cell_text = {"MMM", "MMM"};
  const Image img = h.render();
  const HeatmapLayout L = h.layout();
  auto count_in = [&](const Rect& r, Rgb c) {
    int64_t n = 0;
    for (int64_t y = r.y; y < r.y + r.h; ++y)
      for (int64_t x = r.x; x < r.x + r.w; ++x) n += same(img.at(x, y), c);
    return n;
  };
  // Dark purple cell: white text; yellow cell: black text.
  EXPECT_GT(count_in(L.cell(0, 0), kWhite), 20);
  EXPECT_EQ(count_in(L.cell(0, 0), Rgb{0, 0, 0}), 0);
  EXPECT_GT(count_in(L.cell(0, 1), Rgb{0, 0, 0}), 20);
  EXPECT_EQ(count_in(L.cell(0, 1), kWhite), 0);
}

TEST(Heatmap, LayoutPiecesFitAndDoNotOverlap) {
  Heatmap h = sample_3x4();
  h.col_labels = {"a long column label", "B", "another long one", "D"};  // staggered
  for (int scale : {1, 2}) {
    h.text_scale = scale;
    const HeatmapLayout L = h.layout();
    const Image img = h.render();
    EXPECT_GE(L.grid.x, 0);
    EXPECT_GE(L.grid.y, 0);
    EXPECT_LE(L.grid.x + L.grid.w, L.colorbar.x);
    EXPECT_LE(L.colorbar.x + L.colorbar.w, L.width);
    EXPECT_LE(L.grid.y + L.grid.h, L.height);
    EXPECT_LE(L.colorbar.y + L.colorbar.h, L.height);
    // Row labels are drawn left of the grid: ink in the row's band there.
    const Rect c0 = L.cell(1, 0);
    int64_t ink = 0;
    for (int64_t y = c0.y; y < c0.y + c0.h; ++y)
      for (int64_t x = 0; x < L.grid.x; ++x) ink += !same(img.at(x, y), kWhite);
    EXPECT_GT(ink, 0);
    // The colour bar runs from vmax (top) to vmin (bottom).
    const Rect& bar = L.colorbar;
    EXPECT_TRUE(same_rgb(img.at(bar.x + 1, bar.y), colormap(h.map, 1.0)));
    EXPECT_TRUE(same_rgb(img.at(bar.x + 1, bar.y + bar.h - 1), colormap(h.map, 0.0)));
  }
}

TEST(Heatmap, LabelsStayOutOfTheCells) {
  // Without cell texts every cell pixel is its fill: no label, tick or title ink strays in.
  Heatmap h = sample_3x4();
  h.cell_text.clear();
  h.row_labels = {"a rather long row label", "x", "tok_embeddings"};
  // Flat, staggered (a little wider than a cell) and upright (much wider) column labels.
  for (auto cols : {std::vector<std::string>{"A", "B", "C", "D"},
                    std::vector<std::string>{"abc", "de", "fgh", "ij"},
                    std::vector<std::string>{"long label one", "two", "label three", "4"}})
    for (int scale : {1, 2, 3}) {
      h.col_labels = cols;
      h.text_scale = scale;
      const HeatmapLayout L = h.layout();
      const Image img = h.render();
      for (int64_t r = 0; r < 3; ++r)
        for (int64_t c = 0; c < 4; ++c) {
          const Rect cell = L.cell(r, c);
          const Rgb want = h.color_of(h.values[static_cast<size_t>(r * 4 + c)]);
          int64_t stray = 0;
          for (int64_t y = cell.y; y < cell.y + cell.h; ++y)
            for (int64_t x = cell.x; x < cell.x + cell.w; ++x) stray += !same(img.at(x, y), want);
          EXPECT_EQ(stray, 0) << "cell " << r << "," << c << " at scale " << scale;
        }
    }
}

TEST(Heatmap, LongColumnLabelsReadUpwardsOverTheirColumn) {
  Heatmap h({1, 2, 3}, 1, 3);
  h.col_labels = {"", "a long column label", ""};
  const HeatmapLayout L = h.layout();
  const Image img = h.render();
  const Rect c1 = L.cell(0, 1);
  // The label stands over column 1, as tall as the text is long; nothing else is above the grid.
  int64_t top = -1, bottom = -1, ink_elsewhere = 0;
  for (int64_t y = 0; y < L.grid.y; ++y)
    for (int64_t x = 0; x < L.grid.x + L.grid.w; ++x) {
      if (same(img.at(x, y), kWhite)) continue;
      if (x >= c1.x && x < c1.x + c1.w) {
        if (top < 0) top = y;
        bottom = y;
      } else {
        ++ink_elsewhere;
      }
    }
  ASSERT_GE(top, 0);
  EXPECT_NEAR(bottom - top + 1, Image::text_width("a long column label"), 2);  // glyph margins
  EXPECT_LT(bottom, L.grid.y - 1);
  EXPECT_EQ(ink_elsewhere, 0);
}

TEST(Heatmap, WrongSizesThrow) {
  EXPECT_THROW(Heatmap({1, 2, 3}, 2, 2), Error);
  EXPECT_THROW(Heatmap({}, 0, 0), Error);
  EXPECT_THROW(Heatmap({1, 2}, -1, -2), Error);
  try {
    Heatmap({1, 2, 3}, 2, 2);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 values for 2 x 2"), std::string::npos) << e.what();
  }

  auto throws = [](auto edit, const std::string& fragment) {
    Heatmap h = sample_3x4();
    edit(h);
    try {
      h.render();
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    EXPECT_THROW(h.layout(), Error);
  };
  throws([](Heatmap& h) { h.values.pop_back(); }, "11 values for 3 x 4");
  throws([](Heatmap& h) { h.cell_text.push_back("x"); }, "13 cell texts");
  throws([](Heatmap& h) { h.row_labels.pop_back(); }, "2 row labels for 3 rows");
  throws([](Heatmap& h) { h.col_labels.push_back("E"); }, "5 column labels for 4 columns");
  throws([](Heatmap& h) { h.rows = 4; }, "12 values for 4 x 4");
  throws([](Heatmap& h) { h.text_scale = 0; }, "text_scale 0");
  throws([](Heatmap& h) { h.min_cell_width = -1; }, "min_cell_width -1");
  throws([](Heatmap& h) { h.vmin = 2, h.vmax = 1; }, "vmin 2 is above vmax 1");
  throws([](Heatmap& h) { h.vmax = INFINITY; }, "vmax inf");
  EXPECT_THROW(sample_3x4().layout().cell(3, 0), Error);
  EXPECT_THROW(sample_3x4().layout().cell(0, -1), Error);
}

// A picture like the logit lens's, saved for a person to look at.
TEST(Heatmap, RendersALensLikeSample) {
  const std::vector<std::string> tokens = {"<s>",   " Once",   " upon",  " a",
                                           " time", ",",       " there", " was",
                                           " a",    " little", " girl",  " named"};
  const std::vector<std::string> words = {" upon", " a",      " time", ",",      " there", " was",
                                          " a",    " little", " girl", " named", " Lily",  "."};
  const int64_t rows = 6, cols = 12;
  Heatmap h(std::vector<double>(rows * cols), rows, cols);
  h.cell_text.resize(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    h.row_labels.push_back(r == 0 ? "tok_embeddings" : "layers." + std::to_string(r - 1));
    for (int64_t c = 0; c < cols; ++c) {
      const auto i = static_cast<size_t>(r * cols + c);
      // Deeper layers grow more confident, and more often right.
      h.values[i] = std::min(1.0, 0.05 + 0.17 * r * (0.4 + 0.6 * ((c * 7 + r * 3) % 5) / 4.0));
      h.cell_text[i] = r >= 3 || (c + r) % 3 == 0 ? words[c] : (r % 2 ? "Lily" : "\xE2\x96\x81the");
    }
  }
  h.values[3] = NAN;
  h.col_labels = tokens;
  h.title = "logit lens: top-1 token per layer and position, coloured by its probability";
  h.colorbar_label = "p(top-1)";
  h.vmin = 0;
  h.vmax = 1;
  const Image img = h.render();
  const std::string path = ::testing::TempDir() + "heatmap_sample.png";
  img.save_png(path);
  h.text_scale = 2;
  h.map = Colormap::Diverging;
  h.render().save_png(::testing::TempDir() + "heatmap_sample_x2.png");
}

}  // namespace
}  // namespace strata
