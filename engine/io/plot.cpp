// plot.cpp — see plot.h.
#include "engine/io/plot.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace dfq {

namespace {

// 5x7 glyphs, one string of 7 rows x 5 columns each ('#' = ink).
struct Glyph {
  char c;
  const char* rows;
};
constexpr Glyph kFont[] = {
    {'0', " ### #   ##  ### # ###  ##   # ### "}, {'1', "  #   ##    #    #    #    #   ### "},
    {'2', " ### #   #    #   #   #   #   #####"}, {'3', "#####   #   #     #     ##   # ### "},
    {'4', "   #   ##  # # #  # #####   #    # "}, {'5', "######    ####     #    ##   # ### "},
    {'6', "  ##  #   #    #### #   ##   # ### "}, {'7', "#####    #   #   #   #    #    #   "},
    {'8', " ### #   ##   # ### #   ##   # ### "}, {'9', " ### #   ##   # ####    #   #  ##  "},
    {'A', " ### #   ##   #######   ##   ##   #"}, {'B', "#### #   ##   ##### #   ##   ##### "},
    {'C', " ### #   ##    #    #    #   # ### "}, {'D', "###  #  # #   ##   ##   ##  # ###  "},
    {'E', "######    #    #### #    #    #####"}, {'F', "######    #    #### #    #    #    "},
    {'G', " ### #   ##    # ####   ##   # ####"}, {'H', "#   ##   ##   #######   ##   ##   #"},
    {'I', " ###   #    #    #    #    #   ### "}, {'J', "  ###   #    #    #    # #  #  ##  "},
    {'K', "#   ##  # # #  ##   # #  #  # #   #"}, {'L', "#    #    #    #    #    #    #####"},
    {'M', "#   ### ### # ##   ##   ##   ##   #"}, {'N', "#   ##   ###  ## # ##  ###   ##   #"},
    {'O', " ### #   ##   ##   ##   ##   # ### "}, {'P', "#### #   ##   ##### #    #    #    "},
    {'Q', " ### #   ##   ##   ## # ##  #  ## #"}, {'R', "#### #   ##   ##### # #  #  # #   #"},
    {'S', " #####    #     ###     #    ##### "}, {'T', "#####  #    #    #    #    #    #  "},
    {'U', "#   ##   ##   ##   ##   ##   # ### "}, {'V', "#   ##   ##   ##   ##   # # #   #  "},
    {'W', "#   ##   ##   ## # ## # ## # # # # "}, {'X', "#   ##   # # #   #   # # #   ##   #"},
    {'Y', "#   ##   ##   # # #   #    #    #  "}, {'Z', "#####    #   #   #   #   #    #####"},
    {'.', "                          ##   ##  "}, {',', "                     ##   ##   #   "},
    {'-', "               #####               "}, {'+', "       #    #  #####  #    #       "},
    {'(', "   #   #   #    #    #     #     # "}, {')', " #     #     #    #    #   #   #   "},
    {'/', "         #   #   #   #   #         "}, {':', "      ##   ##        ##   ##       "},
    {'=', "          #####     #####          "}, {'%', "##   ##  #   #   #   #   #  ##   ##"},
    {'<', "   #   #   #   #     #     #     # "}, {'>', " #     #     #     #   #   #   #   "},
    {'_', "                              #####"}, {'*', "     # # # ### ##### ### # # #     "},
    {'|', "  #    #    #    #    #    #    #  "},
};

const char* glyph(char c) {
  c = char(std::toupper(static_cast<unsigned char>(c)));
  for (const Glyph& g : kFont)
    if (g.c == c) return g.rows;
  return nullptr;
}

using Rgb = std::array<uint8_t, 3>;

void put(ImageU8& img, int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= img.w || y >= img.h) return;
  uint8_t* p = img.px(y, x);
  p[0] = c[0], p[1] = c[1], p[2] = c[2];
}

void block(ImageU8& img, int x0, int y0, int w, int h, Rgb c) {
  for (int y = y0; y < y0 + h; ++y)
    for (int x = x0; x < x0 + w; ++x) put(img, x, y, c);
}

// A line of the given thickness (a square pen), Bresenham.
void line(ImageU8& img, int x0, int y0, int x1, int y1, Rgb c, int thick) {
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  for (;;) {
    block(img, x0 - thick / 2, y0 - thick / 2, thick, thick, c);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

void marker(ImageU8& img, int cx, int cy, PlotSeries::Style st, int r, Rgb c) {
  for (int y = -r - 1; y <= r + 1; ++y)
    for (int x = -r - 1; x <= r + 1; ++x) {
      const double d = std::sqrt(double(x * x + y * y));
      bool ink = false;
      if (st == PlotSeries::Style::Dots) ink = d <= r + 0.3;
      if (st == PlotSeries::Style::Ring) ink = d <= r + 0.5 && d >= r - 1.5;
      if (st == PlotSeries::Style::Cross) ink = (std::abs(x - y) <= 1 || std::abs(x + y) <= 1) && std::abs(x) <= r;
      if (ink) put(img, cx + x, cy + y, c);
    }
}

// Ticks at 1, 2 or 5 x 10^k covering [lo, hi], about `want` of them.
std::vector<double> nice_ticks(double lo, double hi, int want) {
  const double raw = (hi - lo) / std::max(1, want);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) t.push_back(std::fabs(v) < step * 1e-9 ? 0 : v);
  return t;
}

std::string tick_label(double v, bool log_axis) {
  char b[32];
  if (log_axis) {
    const int e = int(std::lround(std::log10(v)));
    if (e >= -2 && e <= 3) std::snprintf(b, sizeof b, "%g", std::pow(10.0, e));
    else std::snprintf(b, sizeof b, "1E%d", e);
  } else {
    std::snprintf(b, sizeof b, "%g", v);
  }
  return b;
}

}  // namespace

int text_width(const std::string& text, int scale) { return int(text.size()) * 6 * scale; }

int draw_text(ImageU8& img, int x, int y, const std::string& text, std::array<uint8_t, 3> rgb, int scale) {
  int cx = x;
  for (char ch : text) {
    if (const char* g = glyph(ch))
      for (int r = 0; r < 7; ++r)
        for (int col = 0; col < 5; ++col)
          if (g[r * 5 + col] == '#') block(img, cx + col * scale, y + r * scale, scale, scale, rgb);
    cx += 6 * scale;
  }
  return cx - x;
}

ImageU8 render_plot(const PlotSpec& spec) {
  ImageU8 img;
  img.w = std::max(200, spec.width);
  img.h = std::max(150, spec.height);
  img.data.assign(size_t(img.w * img.h * 3), 255);
  const Rgb black{0, 0, 0}, grid{225, 225, 225};
  const int left = 110, right = 30, top = spec.title.empty() ? 30 : 60, bottom = 80;
  const int pw = int(img.w) - left - right, ph = int(img.h) - top - bottom;
  auto ty = [&spec](double y) { return spec.log_y ? std::log10(y) : y; };
  auto usable = [&spec](double x, double y) { return std::isfinite(x) && std::isfinite(y) && (!spec.log_y || y > 0); };
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const PlotSeries& s : spec.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (usable(s.x[i], s.y[i])) {
        x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
        y0 = std::min(y0, ty(s.y[i])), y1 = std::max(y1, ty(s.y[i]));
      }
  if (!(x0 <= x1)) x0 = 0, x1 = 1;
  if (!(y0 <= y1)) y0 = 0, y1 = 1;
  if (x1 - x0 < 1e-12) x0 -= 0.5, x1 += 0.5;
  if (y1 - y0 < 1e-12) y0 -= 0.5, y1 += 0.5;
  const double mx = (x1 - x0) * 0.04, my = (y1 - y0) * 0.05;  // margins inside the frame
  x0 -= mx, x1 += mx, y0 -= my, y1 += my;
  auto px = [&](double x) { return left + int(std::lround((x - x0) / (x1 - x0) * (pw - 1))); };
  auto py = [&](double y) { return top + int(std::lround((y1 - ty(y)) / (y1 - y0) * (ph - 1))); };
  auto py_t = [&](double t) { return top + int(std::lround((y1 - t) / (y1 - y0) * (ph - 1))); };
  // grid lines and ticks
  for (double t : nice_ticks(x0, x1, 8)) {
    const int x = px(t);
    line(img, x, top, x, top + ph - 1, grid, 1);
    line(img, x, top + ph - 1, x, top + ph + 5, black, 1);
    const std::string l = tick_label(t, false);
    draw_text(img, x - text_width(l) / 2, top + ph + 10, l, black);
  }
  std::vector<double> yt;
  if (spec.log_y) {
    for (double e = std::ceil(y0); e <= y1; e += 1) yt.push_back(e);
    if (yt.size() > 10) {  // many decades: every other
      std::vector<double> half;
      for (size_t i = 0; i < yt.size(); i += 2) half.push_back(yt[i]);
      yt = half;
    }
  } else {
    yt = nice_ticks(y0, y1, 6);
  }
  for (double t : yt) {
    const int y = py_t(t);
    line(img, left, y, left + pw - 1, y, grid, 1);
    line(img, left - 6, y, left, y, black, 1);
    const std::string l = tick_label(spec.log_y ? std::pow(10.0, t) : t, spec.log_y);
    draw_text(img, left - 10 - text_width(l), y - 7, l, black);
  }
  // frame
  line(img, left, top, left + pw - 1, top, black, 1);
  line(img, left, top + ph - 1, left + pw - 1, top + ph - 1, black, 1);
  line(img, left, top, left, top + ph - 1, black, 1);
  line(img, left + pw - 1, top, left + pw - 1, top + ph - 1, black, 1);
  // series
  for (const PlotSeries& s : spec.series) {
    bool have_prev = false;
    int lx = 0, ly = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!usable(s.x[i], s.y[i])) {
        have_prev = false;
        continue;
      }
      const int x = px(s.x[i]), y = py(s.y[i]);
      if (s.style == PlotSeries::Style::Line) {
        if (have_prev) line(img, lx, ly, x, y, s.rgb, s.size);
        else block(img, x - s.size / 2, y - s.size / 2, s.size, s.size, s.rgb);
      } else {
        marker(img, x, y, s.style, s.size, s.rgb);
      }
      lx = x, ly = y, have_prev = true;
    }
  }
  // legend (top right, inside the frame)
  int ly = top + 12, maxw = 0;
  for (const PlotSeries& s : spec.series) maxw = std::max(maxw, text_width(s.label));
  const int lx = left + pw - maxw - 60;
  for (const PlotSeries& s : spec.series) {
    if (s.label.empty()) continue;
    block(img, lx - 8, ly - 5, maxw + 60, 24, {255, 255, 255});
    if (s.style == PlotSeries::Style::Line) line(img, lx, ly + 7, lx + 30, ly + 7, s.rgb, s.size);
    else marker(img, lx + 15, ly + 7, s.style, std::min(s.size, 7), s.rgb);
    draw_text(img, lx + 40, ly, s.label, black);
    ly += 24;
  }
  // labels
  if (!spec.title.empty()) draw_text(img, left + (pw - text_width(spec.title)) / 2, 20, spec.title, black);
  draw_text(img, left + (pw - text_width(spec.xlabel)) / 2, top + ph + 40, spec.xlabel, black);
  {  // the y label, rotated: drawn into a strip and transposed
    ImageU8 strip;
    strip.w = text_width(spec.ylabel) + 4;
    strip.h = 18;
    strip.data.assign(size_t(strip.w * strip.h * 3), 255);
    draw_text(strip, 2, 2, spec.ylabel, black);
    const int ox = 12, oy = top + (ph + int(strip.w)) / 2;
    for (int y = 0; y < strip.h; ++y)
      for (int x = 0; x < strip.w; ++x) {
        const uint8_t* p = strip.px(y, x);
        if (p[0] == 0) put(img, ox + y, oy - x, black);
      }
  }
  return img;
}

}  // namespace dfq
