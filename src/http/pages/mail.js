// The pages of mailed links (password reset, email verification): the token stays in the
// page until the user submits, so that opening the link (as mail scanners do) uses nothing.
const token = new URLSearchParams(location.search).get("token") ?? "";
const form = document.querySelector("form");
const outcome = document.getElementById("outcome");

const messages = {
  invalid_reset_token: "This link is no longer valid: it was used, replaced by a newer one, or has expired. Ask for a new one.",
  invalid_verification_token: "This link is no longer valid: it was used, replaced by a newer one, or has expired.",
  validation_failed: "That password is not allowed: ",
  account_disabled: "This account is disabled.",
};

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { token };
  for (const [name, value] of new FormData(form)) body[name] = value;
  const response = await fetch(form.dataset.action, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.ok) {
    form.hidden = true;
    outcome.textContent = form.dataset.done ?? "Done: your new password is set. You can sign in with it now.";
    return;
  }
  const error = await response.json().catch(() => ({}));
  const known = messages[error.code];
  outcome.textContent = known
    ? known + (error.code === "validation_failed" ? error.error : "")
    : "Something went wrong (" + response.status + "). Try again later.";
});
