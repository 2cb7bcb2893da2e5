/** Text from another process (a runner, a download), bounded before it is copied into errors, events and logs. */
export function boundedText(text: string, maxLength = 500): string {
  return text.length <= maxLength ? text : `${text.slice(0, maxLength)}...`;
}
