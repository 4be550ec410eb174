// The alerts page: new alerts arrive on the console stream (/ws/supervision/) and are
// listed above the table as they come.
(function () {
  "use strict";
  const box = document.getElementById("live-alerts");
  const titles = JSON.parse(document.getElementById("rule-titles").textContent);
  if (!box) return;
  const list = box.querySelector("ul");
  let delay = 500;
  function open() {
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/supervision/");
    ws.onopen = () => { delay = 500; };
    ws.onmessage = (e) => {
      const event = JSON.parse(e.data);
      if (event.type !== "alert") return;
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = event.id + "/";
      link.textContent = "#" + event.id;
      li.append(link, " " + (titles[event.rule] || event.rule) + " · " + event.severity);
      list.prepend(li);
      box.hidden = false;
    };
    ws.onclose = (e) => { if (e.code < 4400) { setTimeout(open, delay); delay = Math.min(delay * 2, 10000); } };
  }
  open();
})();
