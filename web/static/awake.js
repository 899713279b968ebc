/* Keeping the phone's screen on while a take records (a 10-minute take outlasts most
 * screen timeouts, and a locked phone cannot tag).
 *
 * The Wake Lock API where the browser offers it (a secure context: not plain HTTP on the
 * kit's hotspot, but e.g. a laptop on localhost). Everywhere else, or if the browser
 * refuses, a muted looping video plays behind the page (<video data-wakelock> in
 * home.html): browsers keep the screen on while a video plays. Chromium does so for a
 * muted video only if it is in view and covers at least a fifth of the viewport, so it
 * fills the viewport, invisible, under everything (home.css); Firefox only for a video
 * with a sound track, so the 4 s clip carries silence (under 5 s: no media notification).
 *
 * The clip (web/static/awake.webm and awake.mp4, about 3 kB each: 16x16 black at 2 fps
 * with a silent mono track) was made with
 *   ffmpeg -f lavfi -i color=c=black:s=16x16:r=2:d=4 -f lavfi -i anullsrc=r=48000:cl=mono
 *     -t 4 -map_metadata -1 -fflags +bitexact -flags:v +bitexact -flags:a +bitexact
 *     -c:v libvpx -b:v 8k -c:a libopus -b:a 6k -ac 1 awake.webm
 * and for Safari the same with anullsrc=r=44100 and -c:v libx264 -profile:v baseline
 * -pix_fmt yuv420p -c:a aac -b:a 8k -ac 1 -movflags +faststart awake.mp4.
 */
"use strict";

window.KitAwake = (function () {
  var wanted = false;
  var sentinel = null; // the Wake Lock API's, while held
  var asking = false;
  var refused = false; // the API said no: the video until the page is next shown
  var video = null;

  function theVideo() {
    if (!video) {
      video = document.querySelector("video[data-wakelock]");
      if (video) {
        video.muted = true; // the attribute alone is not enough for every browser
        video.defaultMuted = true;
        video.setAttribute("playsinline", "");
      }
    }
    return video;
  }

  function mark() {
    var how = sentinel ? "api" : video && !video.paused ? "video" : "";
    document.documentElement.setAttribute("data-awake", wanted ? how || "trying" : "");
  }

  function playVideo() {
    var v = theVideo();
    if (!v || !wanted) return;
    if (v.preload !== "auto") { v.preload = "auto"; v.load(); }
    var played = v.play();
    if (played && played.then) played.then(mark, function () { mark(); /* refused: try again on the next touch */ });
    mark();
  }

  function stopVideo() {
    if (video && !video.paused) video.pause();
  }

  function engage() {
    wanted = true;
    if (document.hidden) return; // both kinds end while the page is hidden; done again on return
    if (sentinel) { mark(); return; }
    if (navigator.wakeLock && navigator.wakeLock.request && !refused) {
      if (asking) return;
      asking = true;
      navigator.wakeLock.request("screen").then(function (lock) {
        asking = false;
        if (!wanted) { lock.release(); return; }
        sentinel = lock;
        stopVideo();
        lock.addEventListener("release", function () {
          if (sentinel === lock) sentinel = null;
          // Released by the browser (page hidden, battery saver): the video takes over.
          if (wanted && !document.hidden) playVideo();
          mark();
        });
        mark();
      }, function () {
        asking = false;
        refused = true;
        playVideo(); // refused (not visible, a policy, battery saver): the video instead
      });
    } else {
      playVideo();
    }
    mark();
  }

  function release() {
    wanted = false;
    if (sentinel) { var s = sentinel; sentinel = null; s.release().catch(function () { /* gone */ }); }
    stopVideo();
    mark();
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) return;
    refused = false;
    if (wanted) engage();
  });
  // A browser that refused to play without a touch plays after one.
  document.addEventListener("pointerdown", function () {
    if (wanted && !sentinel && video && video.paused) playVideo();
  }, true);

  return {
    engage: engage,
    release: release,
    /* "api", "video", or "" (nothing held). */
    holding: function () { return sentinel ? "api" : video && !video.paused ? "video" : ""; },
  };
})();
