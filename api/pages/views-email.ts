// Pages about the account's email: forgot password, reset password, the confirmation link's answer, the
// banner of an unconfirmed address, and the change of address.
import { emptyForm, fieldAttrs, fieldError, formErrorBox, newPasswordFields, type FormState } from './forms.js';
import { html, type SafeHtml } from './html.js';
import { csrfField, type PageOptions, type SignedIn } from './layout.js';

/** With no mail server, where the messages are: the operator (or a developer) reads them there. */
export function outboxNote(outbox: string | undefined): SafeHtml | '' {
  return outbox
    ? html`<p class="muted small" id="outbox-note">This Keyfarm has no mail server set up (SMTP_URL): its messages are saved as files in
        <code id="outbox-dir">${outbox}</code> on the server instead of being sent.</p>`
    : '';
}

export function forgotPasswordPage(
  csrf: string,
  outbox: string | undefined,
  form: FormState = emptyForm(),
): PageOptions {
  return {
    title: 'Forgot your password?',
    body: html`<h1>Forgot your password?</h1>
      <p>Enter the email address of your account. If there is an account with it, we mail it a link to choose a new password.</p>
      ${formErrorBox(form)}
      <form method="post" action="/forgot-password" class="card" novalidate>
        ${csrfField(csrf)}
        <label for="email">Email</label>
        <input id="email" name="email" type="email" autocomplete="username" required maxlength="254" value="${form.values.email ?? ''}"${fieldAttrs(form, 'email')}>
        ${fieldError(form, 'email')}
        <div class="actions"><button type="submit">Send me a link</button></div>
      </form>
      ${outboxNote(outbox)}
      <p><a href="/login">Back to log in</a></p>`,
  };
}

/** The same page whether or not an account has the address. */
export function resetRequestedPage(outbox: string | undefined): PageOptions {
  return {
    title: 'Check your mail',
    body: html`<h1>Check your mail</h1>
      <p class="notice" role="status" id="reset-requested">If an account exists with that email, a password reset link is on its way.
        The link works once, for one hour.</p>
      <p>Nothing after a few minutes? Check the spam folder, or ask again later.</p>
      ${outboxNote(outbox)}
      <p><a href="/login">Back to log in</a></p>`,
  };
}

export function resetPasswordPage(csrf: string, token: string, form: FormState = emptyForm()): PageOptions {
  return {
    title: 'Choose a new password',
    body: html`<h1>Choose a new password</h1>
      <p>After the change you are logged out everywhere, and log in again with the new password.</p>
      ${formErrorBox(form)}
      <form method="post" action="/reset-password" class="card" novalidate>
        ${csrfField(csrf)}
        <input type="hidden" name="token" value="${token}">
        ${newPasswordFields(form)}
        <div class="actions"><button type="submit">Change password</button></div>
      </form>`,
  };
}

export function passwordResetDonePage(): PageOptions {
  return {
    title: 'Password changed',
    body: html`<h1>Your password is changed</h1>
      <p class="notice" role="status" id="reset-done">Every session of your account has ended, here and on other devices.</p>
      <div class="actions"><a class="button" href="/login" id="login-again">Log in</a></div>`,
  };
}

export function linkFailedPage(title: string, message: string, next: { href: string; label: string }): PageOptions {
  return {
    title,
    body: html`<h1>${title}</h1><p class="error" role="alert" id="link-error">${message}</p><p><a href="${next.href}">${next.label}</a></p>`,
  };
}

export function emailVerifiedPage(signedIn: boolean): PageOptions {
  return {
    title: 'Address confirmed',
    body: html`<h1>Your email address is confirmed</h1>
      <p class="notice" role="status" id="email-verified">Thank you. You can now export your key, and reset your password by mail if you ever forget it.</p>
      <p><a href="${signedIn ? '/account' : '/login'}">${signedIn ? 'Back to your account' : 'Log in'}</a></p>`,
  };
}

/** On the account page while the address is not confirmed. */
export function verifyBanner(user: SignedIn, outbox: string | undefined, sent: boolean): SafeHtml {
  return html`<section class="notice" id="verify-banner" role="status" aria-labelledby="verify-banner-title">
      <h2 id="verify-banner-title">Confirm your email address</h2>
      <p>${sent ? 'A new confirmation link is on its way to' : 'We mailed a confirmation link to'} <strong>${user.email}</strong>.
        Your account works as usual meanwhile; exporting your key needs a confirmed address.</p>
      <form method="post" action="/account/verify-email">${csrfField(user.csrf)}
        <div class="actions"><button type="submit" class="secondary" id="resend-verification">Send a new link</button></div>
      </form>
      ${outboxNote(outbox)}
    </section>`;
}

export function changeEmailPage(user: SignedIn, form: FormState = emptyForm()): PageOptions {
  return {
    title: 'Change email address',
    user,
    path: '/account',
    body: html`<h1>Change your email address</h1>
      <p>Now: <strong id="current-email">${user.email}</strong>. We mail a confirmation link to the new address, and tell the old one.</p>
      ${formErrorBox(form)}
      <form method="post" action="/account/email" class="card" novalidate>
        ${csrfField(user.csrf)}
        <label for="email">New email address</label>
        <input id="email" name="email" type="email" autocomplete="email" required maxlength="254" value="${form.values.email ?? ''}"${fieldAttrs(form, 'email')}>
        ${fieldError(form, 'email')}
        <label for="password">Your password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024"${fieldAttrs(form, 'password')}>
        ${fieldError(form, 'password')}
        <div class="actions"><button type="submit">Change address</button></div>
      </form>`,
  };
}
