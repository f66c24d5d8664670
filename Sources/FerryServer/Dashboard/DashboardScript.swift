/// The dashboard's only script, served from `/assets/dashboard.js` (the CSP allows no
/// other). Pages work without it for reading; it adds confirmation dialogs, uploads with
/// progress and drag and drop, live listings, and times in the reader's time zone.
enum DashboardScript {
    static let js = #"""
    "use strict";
    (function () {
      var meta = document.querySelector('meta[name="csrf-token"]');
      var csrf = meta ? meta.getAttribute("content") : "";
      document.documentElement.classList.add("js");

      function localTimes(root) {
        root.querySelectorAll("time[datetime]").forEach(function (t) {
          var d = new Date(t.getAttribute("datetime"));
          if (!isNaN(d.getTime())) { t.textContent = d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }); }
        });
      }
      localTimes(document);

      // A destructive form asks first; once confirmed it is sent with confirmed=yes, which
      // the server otherwise answers with a confirmation page.
      document.addEventListener("submit", function (event) {
        var form = event.target;
        var question = form.getAttribute("data-confirm");
        if (!question || form.querySelector('input[name="confirmed"]')) { return; }
        if (!window.confirm(question)) { event.preventDefault(); return; }
        var confirmed = document.createElement("input");
        confirmed.type = "hidden";
        confirmed.name = "confirmed";
        confirmed.value = "yes";
        form.appendChild(confirmed);
      });

      // Replaces the listing with the server's current one, without a reload.
      function refreshListing() {
        var current = document.getElementById("listing");
        if (!current) { return; }
        fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
          .then(function (response) { return response.ok ? response.text() : null; })
          .then(function (html) {
            if (!html) { return; }
            var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("listing");
            if (!fresh) { return; }
            var copy = document.importNode(fresh, true);
            current.replaceWith(copy);
            localTimes(copy);
          })
          .catch(function () {});
      }

      var live = document.querySelector("[data-live]");
      if (live && window.EventSource) {
        var source = new EventSource(live.getAttribute("data-live"));
        source.addEventListener("change", refreshListing);
      }

      var form = document.getElementById("upload");
      if (!form) { return; }
      var input = document.getElementById("upload-input");
      var zone = document.getElementById("dropzone");
      var list = document.getElementById("upload-progress");
      var target = form.getAttribute("data-upload");
      var directory = form.getAttribute("data-directory");
      form.addEventListener("submit", function (event) { event.preventDefault(); });

      function describe(xhr) {
        var text = (xhr.responseText || "").trim();
        return text.length > 0 && text.length < 300 ? text : "the server answered " + xhr.status;
      }

      function uploadOne(file, done) {
        var item = document.createElement("li");
        var label = document.createElement("span");
        label.textContent = file.name + " ";
        var bar = document.createElement("progress");
        bar.max = Math.max(file.size, 1);
        bar.value = 0;
        bar.setAttribute("aria-label", "Uploading " + file.name);
        item.appendChild(label);
        item.appendChild(bar);
        list.appendChild(item);
        var path = directory ? directory + "/" + file.name : file.name;
        var xhr = new XMLHttpRequest();
        xhr.open("PUT", target + "?path=" + encodeURIComponent(path) + "&mtime_ns=" + (file.lastModified > 0 ? file.lastModified + "000000" : "0"));
        xhr.setRequestHeader("X-CSRF-Token", csrf);
        xhr.setRequestHeader("Content-Type", "application/octet-stream");
        xhr.upload.addEventListener("progress", function (e) {
          if (e.lengthComputable) { bar.max = Math.max(e.total, 1); bar.value = e.loaded; }
        });
        xhr.addEventListener("load", function () {
          var ok = xhr.status >= 200 && xhr.status < 300;
          item.textContent = ok ? file.name + " uploaded" : file.name + " failed: " + describe(xhr);
          item.className = ok ? "done" : "failed";
          done();
        });
        xhr.addEventListener("error", function () {
          item.textContent = file.name + " failed: the connection was lost";
          item.className = "failed";
          done();
        });
        xhr.send(file);
      }

      function send(files) {
        var queue = Array.prototype.slice.call(files);
        (function next() {
          var file = queue.shift();
          if (!file) { refreshListing(); return; }
          uploadOne(file, next);
        })();
      }

      input.addEventListener("change", function () {
        var files = Array.prototype.slice.call(input.files);
        input.value = "";
        send(files);
      });
      zone.addEventListener("dragover", function (event) { event.preventDefault(); zone.classList.add("over"); });
      zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
      zone.addEventListener("drop", function (event) {
        event.preventDefault();
        zone.classList.remove("over");
        if (event.dataTransfer && event.dataTransfer.files.length > 0) { send(event.dataTransfer.files); }
      });
    })();
    """#
}
