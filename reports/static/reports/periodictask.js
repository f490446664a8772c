// The schedule form: shows the chosen crontab in words under its field (django-celery-beat's
// behaviour, moved out of an inline script so the Content-Security-Policy allows it).
"use strict";
(function () {
  const data = document.getElementById("readable-crontabs");
  const select = document.getElementById("id_crontab");
  const helpSource = document.getElementById("crontab-help");
  if (!data || !select || !helpSource) {
    return;
  }
  const readable = JSON.parse(data.textContent);
  const original = helpSource.dataset.help || "";
  const help = document.querySelector(".field-crontab .help");
  const translation = document.querySelector(".field-crontab_translation");
  if (translation) {
    translation.hidden = true;
  }
  function update() {
    if (!help) {
      return;
    }
    help.textContent = original;
    const words = readable[select.value];
    if (words) {
      help.appendChild(document.createElement("br"));
      help.appendChild(document.createTextNode("Translation: " + words));
    }
  }
  select.addEventListener("change", update);
})();
