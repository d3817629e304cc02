// Password strength feedback: length and variety, with what to improve (10 characters is the minimum).
import { t } from "./app.js";

export function strength(password) {
  if (password.length < 10) return 0;
  const kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((re) => re.test(password)).length;
  let score = 1;
  if (password.length >= 14) score += 1;
  if (kinds >= 3) score += 1;
  if (password.length >= 20 || (password.length >= 14 && kinds === 4)) score += 1;
  if (/^(.)\1+$/.test(password) || /^(?:0123456789|1234567890|password|jelszo)/i.test(password)) score = 1;
  return Math.min(score, 4);
}

export function watchStrength(input, meter, text) {
  const update = () => {
    const score = strength(input.value);
    meter.value = score;
    text.textContent = input.value ? t(`strength.${score}`) : t("strength.hint");
  };
  input.addEventListener("input", update);
  update();
}
