// A WeChat Pay JSAPI payment inside WeChat's browser: hand the signed parameters the
// server made (#jsapi) to WeixinJSBridge; whatever the outcome, go back to the account
// (the money arrives with WeChat's verified notification, never from this page).
(function () {
  "use strict";
  var me = document.currentScript;
  function pay() {
    var params = JSON.parse(document.getElementById("jsapi").textContent);
    window.WeixinJSBridge.invoke("getBrandWCPayRequest", params, function () {
      window.location.href = me.dataset.back;
    });
  }
  if (window.WeixinJSBridge) pay();
  else document.addEventListener("WeixinJSBridgeReady", pay, false);
})();
