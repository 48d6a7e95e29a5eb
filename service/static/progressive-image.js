/*
 * kervan progressive images: placeholder -> small AVIF -> full quality, framework-free.
 *
 * Markup (the server renders it from GET /images/{id}/manifest):
 *   <img class="kv-progressive" width="W" height="H" alt="..." src="PREVIEW_DATA_URI"
 *        data-kv-manifest='{"small": {...}, "srcset": {...}, "sizes": "...", "blurhash": "..."}'
 *        [data-kv-priority="high"]>
 * The width/height attributes reserve the box (with CSS `height: auto`), and the same <img>
 * element is kept through every stage, so nothing shifts. A stage is swapped in only once its
 * file has been fetched and decoded off-screen, so the visible image never goes blank.
 * Stages: the placeholder is shown at once; the small stage loads when the image nears the
 * viewport (IntersectionObserver); the full srcset loads when the browser is idle
 * (requestIdleCallback). The image marked data-kv-priority="high" (the LCP image, whose full
 * srcset the page preloads with fetchpriority="high") goes straight to full quality.
 */
(function () {
  "use strict";

  var FORMATS = ["avif", "webp", "jpeg"];
  var ALPHABET =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";

  function decode83(str) {
    var value = 0;
    for (var i = 0; i < str.length; i++) value = value * 83 + ALPHABET.indexOf(str[i]);
    return value;
  }

  function srgbToLinear(v) {
    var x = v / 255;
    return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4);
  }

  function linearToSrgb(v) {
    var x = Math.max(0, Math.min(1, v));
    return x <= 0.0031308
      ? Math.round(x * 12.92 * 255)
      : Math.round((1.055 * Math.pow(x, 1 / 2.4) - 0.055) * 255);
  }

  function signPow(v, e) {
    return (v < 0 ? -1 : 1) * Math.pow(Math.abs(v), e);
  }

  /* BlurHash -> data URI of a tiny canvas; only used when no inline preview was rendered. */
  function blurhashDataUri(hash, width, height) {
    if (!hash || hash.length < 6) return null;
    var size = decode83(hash[0]);
    var nx = (size % 9) + 1;
    var ny = Math.floor(size / 9) + 1;
    if (hash.length !== 4 + 2 * nx * ny) return null;
    var maxAc = (decode83(hash[1]) + 1) / 166;
    var colours = [];
    var dc = decode83(hash.substring(2, 6));
    colours.push([srgbToLinear(dc >> 16), srgbToLinear((dc >> 8) & 255), srgbToLinear(dc & 255)]);
    for (var c = 1; c < nx * ny; c++) {
      var ac = decode83(hash.substring(4 + c * 2, 6 + c * 2));
      colours.push([
        signPow((Math.floor(ac / 361) - 9) / 9, 2) * maxAc,
        signPow(((Math.floor(ac / 19) % 19) - 9) / 9, 2) * maxAc,
        signPow(((ac % 19) - 9) / 9, 2) * maxAc,
      ]);
    }
    var canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    var ctx = canvas.getContext("2d");
    if (!ctx) return null;
    var img = ctx.createImageData(width, height);
    for (var y = 0; y < height; y++) {
      for (var x = 0; x < width; x++) {
        var r = 0, g = 0, b = 0;
        for (var j = 0; j < ny; j++) {
          for (var i = 0; i < nx; i++) {
            var basis = Math.cos((Math.PI * x * i) / width) * Math.cos((Math.PI * y * j) / height);
            var col = colours[i + j * nx];
            r += col[0] * basis;
            g += col[1] * basis;
            b += col[2] * basis;
          }
        }
        var p = 4 * (x + y * width);
        img.data[p] = linearToSrgb(r);
        img.data[p + 1] = linearToSrgb(g);
        img.data[p + 2] = linearToSrgb(b);
        img.data[p + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    return canvas.toDataURL();
  }

  function srcsetString(entries) {
    return entries
      .map(function (e) {
        return e.src + " " + e.width + "w";
      })
      .join(", ");
  }

  /* Fetch and decode a candidate off-screen; resolves with the URL the browser picked. */
  function preload(src, srcset, sizes) {
    return new Promise(function (resolve, reject) {
      var probe = new Image();
      probe.decoding = "async";
      if (srcset) {
        probe.sizes = sizes;
        probe.srcset = srcset;
      }
      if (src) probe.src = src;
      var done = function () {
        resolve(probe.currentSrc || probe.src);
      };
      probe.onload = function () {
        if (probe.decode) probe.decode().then(done, done);
        else done();
      };
      probe.onerror = reject;
    });
  }

  function announce(el, stage) {
    el.setAttribute("data-kv-stage", stage);
    el.dispatchEvent(new CustomEvent("kv:stage", { detail: { stage: stage } }));
  }

  function whenIdle(fn) {
    if (window.requestIdleCallback) window.requestIdleCallback(fn, { timeout: 2000 });
    else setTimeout(fn, 200);
  }

  function smallCandidates(manifest) {
    // The manifest's small stage is AVIF; browsers without AVIF get the same width in WebP/JPEG.
    var list = [manifest.small.src];
    FORMATS.slice(1).forEach(function (fmt) {
      var same = (manifest.srcset[fmt] || []).filter(function (e) {
        return e.width === manifest.small.width;
      })[0];
      if (same) list.push(same.src);
    });
    return list;
  }

  function firstThatLoads(candidates) {
    var attempt = function (i) {
      if (i >= candidates.length) return Promise.reject(new Error("no candidate loaded"));
      return preload(candidates[i]).then(
        function (url) {
          return { url: url, index: i };
        },
        function () {
          return attempt(i + 1);
        }
      );
    };
    return attempt(0);
  }

  function loadFull(el, manifest, formatIndex) {
    var fmt = FORMATS[formatIndex];
    var srcset = srcsetString(manifest.srcset[fmt] || []);
    preload(null, srcset, manifest.sizes).then(
      function () {
        el.sizes = manifest.sizes;
        el.srcset = srcset;
        announce(el, "full");
      },
      function () {
        if (formatIndex + 1 < FORMATS.length) loadFull(el, manifest, formatIndex + 1);
      }
    );
  }

  function loadStages(el, manifest) {
    if (el.getAttribute("data-kv-stage") !== "placeholder") return;
    if (el.getAttribute("data-kv-priority") === "high") {
      // The LCP image: its full srcset is already requested by the preload hint.
      loadFull(el, manifest, 0);
      return;
    }
    announce(el, "loading-small");
    firstThatLoads(smallCandidates(manifest)).then(
      function (found) {
        el.src = found.url;
        announce(el, "small");
        whenIdle(function () {
          loadFull(el, manifest, found.index);
        });
      },
      function () {
        loadFull(el, manifest, 0);
      }
    );
  }

  function prepare(el) {
    var manifest;
    try {
      manifest = JSON.parse(el.getAttribute("data-kv-manifest") || "");
    } catch (e) {
      return null;
    }
    if (!el.getAttribute("src") && manifest.blurhash) {
      var uri = blurhashDataUri(manifest.blurhash, 32, 32);
      if (uri) el.src = uri;
    }
    announce(el, "placeholder");
    return manifest;
  }

  function init(root) {
    var els = (root || document).querySelectorAll("img.kv-progressive:not([data-kv-stage])");
    var observer =
      "IntersectionObserver" in window
        ? new IntersectionObserver(
            function (entries) {
              entries.forEach(function (entry) {
                if (!entry.isIntersecting) return;
                observer.unobserve(entry.target);
                loadStages(entry.target, entry.target.__kvManifest);
              });
            },
            { rootMargin: "200px 0px" }
          )
        : null;
    Array.prototype.forEach.call(els, function (el) {
      var manifest = prepare(el);
      if (!manifest) return;
      el.__kvManifest = manifest;
      if (el.getAttribute("data-kv-priority") === "high" || !observer) loadStages(el, manifest);
      else observer.observe(el);
    });
  }

  window.kervanProgressive = { init: init, blurhashDataUri: blurhashDataUri };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      init();
    });
  } else {
    init();
  }
})();
